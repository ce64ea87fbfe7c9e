#!/usr/bin/env bash
# Times the image pipeline against vipsthumbnail and Pillow on a 4000x3000 photo (JPEG q90 and
# PNG) and prints a markdown table of wall time (hyperfine mean) and peak RSS (/usr/bin/time -v).
#
# Needs: hyperfine, libvips-tools (vipsthumbnail), python3 with Pillow, GNU time.
#   apt-get install -y hyperfine libvips-tools time && pip install pillow
# Usage: bench/image/run.sh [WORK_DIR]    (runs, warmups via RUNS / WARMUP env)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${1:-${TMPDIR:-/tmp}/avatar-image-bench}"
runs="${RUNS:-20}"
warmup="${WARMUP:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$work"

for tool in hyperfine vipsthumbnail python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
python3 -c 'import PIL' || { echo "missing: Pillow (pip install pillow)" >&2; exit 1; }

(cd "$root" && cargo build --release --quiet --example normalize)
ours="$CARGO_TARGET_DIR/release/examples/normalize"

if [[ ! -f "$work/photo.jpg" || ! -f "$work/photo.png" ]]; then
  python3 "$here/make_photo.py" "$work"
fi

declare -A cmd
cmd[ours]="$ours {in} $work/ours.jpg"
cmd[vipsthumbnail]="vipsthumbnail {in} -s 640x640 -m centre -o $work/vips.jpg[Q=85]"
cmd[pillow]="python3 $here/pillow_thumb.py {in} $work/pillow.jpg"
order=(ours vipsthumbnail pillow)

peak_rss_mib() {
  # Highest of three runs' maximum resident set size.
  local best=0 kb
  for _ in 1 2 3; do
    kb=$(/usr/bin/time -v bash -c "$1 >/dev/null" 2>&1 | awk -F': ' '/Maximum resident set size/ {print $2}')
    (( kb > best )) && best=$kb
  done
  awk -v kb="$best" 'BEGIN { printf "%.1f", kb / 1024 }'
}

rows=()
for fmt in jpg png; do
  input="$work/photo.$fmt"
  size=$(du -k "$input" | cut -f1)
  args=()
  for name in "${order[@]}"; do
    args+=(-n "$name" "${cmd[$name]//\{in\}/$input}")
  done
  hyperfine -N --warmup "$warmup" --runs "$runs" --export-json "$work/$fmt.json" "${args[@]}" >/dev/null
  for name in "${order[@]}"; do
    mean=$(python3 -c "import json,sys; r={x['command']:x for x in json.load(open(sys.argv[1]))['results']}[sys.argv[2]]; print(f\"{r['mean']*1000:.0f} ± {r['stddev']*1000:.0f}\")" "$work/$fmt.json" "$name")
    rss=$(peak_rss_mib "${cmd[$name]//\{in\}/$input}")
    rows+=("| ${fmt^^} (${size} KiB) | $name | $mean | $rss |")
  done
done

echo "| input 4000×3000 | tool | wall ms (mean ± σ, $runs runs) | peak RSS MiB |"
echo "| --- | --- | ---: | ---: |"
printf '%s\n' "${rows[@]}"
