#!/usr/bin/env bash
# check-layers.sh — which folder of src/ may include which (docs/ARCHITECTURE.md, "Layers").
# Fails, naming file, line and include, when a file includes from a folder its layer may not use.
#   scripts/check-layers.sh [SRC_DIR]     (default: src next to this script)
#   scripts/check-layers.sh --self-test   (shows that a wrong include is caught)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"

# folder: the folders (or single headers, folder/file.h) its files may include besides its own.
# The single headers are known crossings, one header each; new ones are refused. cli's
# ha/agent_config.h stays: `pgha ctl -c FILE` reads [etcd] and [cluster] from an agent's config
# file with the agent's own option table.
rules() {
	cat <<'RULES'
common:
pgproto: common
auth: common
dcs: common
pg: common
backup: common pg
http: common
cluster: common dcs pg backup
api: common dcs http cluster
ha: common dcs pg api cluster backup
proxy: common pgproto auth dcs http cluster
cli: common dcs cluster backup ha/agent_config.h
up: common dcs pg cli cluster backup
RULES
}

check() {
	local src="$1" bad=0
	declare -A allowed
	while IFS=: read -r folder list; do
		allowed[$folder]="$list"
	done < <(rules)
	for dir in "$src"/*/; do
		local folder
		folder="$(basename "$dir")"
		if [[ -z "${allowed[$folder]+set}" ]]; then
			echo "check-layers: src/$folder/ has no rule in scripts/check-layers.sh (add one, and a line in docs/ARCHITECTURE.md)" >&2
			bad=1
			continue
		fi
		while IFS= read -r hit; do
			local file="${hit%%:*}" rest="${hit#*:}"
			local line="${rest%%:*}" inc="${rest#*:}"
			inc="${inc#*\"}"
			inc="${inc%%\"*}"
			local to="${inc%%/*}"
			[[ "$inc" == */* ]] || continue          # a header of the same folder
			[[ "$to" == "$folder" ]] && continue
			local ok=0
			for a in ${allowed[$folder]}; do
				if [[ "$a" == "$to" || "$a" == "$inc" ]]; then ok=1; break; fi
			done
			if [[ $ok -eq 0 ]]; then
				echo "check-layers: ${file#"$src"/}:$line includes \"$inc\": src/$folder/ may include only from: ${allowed[$folder]:-(nothing)}" >&2
				bad=1
			fi
		done < <(grep -Hn '^#include "' "$dir"*.[ch] 2>/dev/null || true)
	done
	return $bad
}

if [[ "${1:-}" == "--self-test" ]]; then
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	cp -r "$here/src" "$tmp/src"
	check "$tmp/src" || { echo "check-layers self-test: the real tree does not pass" >&2; exit 1; }
	printf '#include "ha/decide.h"\n' >> "$tmp/src/pgproto/frame.c"
	if check "$tmp/src" 2>"$tmp/out"; then
		echo "check-layers self-test: a pgproto -> ha include was not caught" >&2
		exit 1
	fi
	grep -q 'pgproto/frame.c:.* includes "ha/decide.h"' "$tmp/out" || {
		echo "check-layers self-test: the error does not name the file and include:" >&2
		cat "$tmp/out" >&2
		exit 1
	}
	echo "check-layers self-test: a wrong include is caught"
	exit 0
fi

check "${1:-$here/src}"
