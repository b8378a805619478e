#!/usr/bin/env bash
# Does fine-tuning make the model write more like the files it was given? (issue #8)
# Takes the first ten Essen folk songs of at least 8 bars from the training corpus (German
# songs: sparser and slower than the Irish fiddle tunes that make up most of the 'folk' style),
# fine-tunes the base model on them as a musician's drop would, and scores base and fine-tuned
# samples against those files with `diffroll eval` (64 samples each; the fine-tuned model writes
# under the style label it learned them as; copies are checked against the whole training
# corpus, which holds the ten files).
# Usage: benches/finetune_quality.sh [BASE_MODEL] (default models/base). Writes under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:-models/base}"
corpus="${CORPUS:-../shared/corpus}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --locked --quiet --bin diffroll
bin=target/debug/diffroll
mkdir -p "$work/drop/folk"
n=0
for f in $(ls "$corpus/train/folk" | grep '^essenFolksong__' | sort); do
  mkdir -p "$work/one/folk"
  cp "$corpus/train/folk/$f" "$work/one/folk/"
  if "$bin" data "$work/one" 2>/dev/null | grep -q '^folk *1 '; then
    cp "$corpus/train/folk/$f" "$work/drop/folk/"
    n=$((n + 1))
  fi
  rm -rf "$work/one"
  [ "$n" -ge 10 ] && break
done
echo "dropped files: $(ls "$work/drop/folk" | tr '\n' ' ')"
export DIFFROLL_DATA_DIR="$work/data"
time "$bin" finetune "$work/drop/folk" --name essen --base "$base"
for model in "$base" "$work/data/models/essen"; do
  echo "== $model against the dropped files"
  "$bin" eval --model "$model" --data "$work/drop" --train "$corpus/train" --style folk --count 64
done
