#!/usr/bin/env bash
# One check of grutool's CUDA paths (issue 15), for a machine with an NVIDIA GPU:
#   1. the cuda-marked tests (encoder vs nn.GRU, batched = one-by-one, save -> load, resume, AMP dtypes, cuDNN);
#   2. grutool bench --device cuda: GRU vs LSTM, cuDNN on (default) and off (native), float16 and float32;
#   3. a short real training (configs/sentiment.yaml, then configs/tagging.yaml with its CRF) on CUDA with AMP,
#      and 2-process DDP over NCCL when the machine has 2 GPUs or more.
# Writes everything under OUT (default docs/reports/gpu-<date>) and a summary report.md there.
# Usage: bash benchmarks/gpu_check.sh [OUT]      (about 5 minutes on one GPU)
set -u
cd "$(dirname "$0")/.."
OUT=${1:-docs/reports/gpu-$(date +%Y%m%d-%H%M)}
mkdir -p "$OUT"
REPORT=$OUT/report.md
status=0
step() {  # step NAME CMD...: run, keep its log, note pass/fail
  local name=$1; shift
  echo "== $name: $*"
  local t0=$SECONDS
  if "$@" >"$OUT/$name.log" 2>&1; then r=ok; else r="FAILED (exit $?)"; status=1; fi
  echo "| $name | $r | $((SECONDS - t0)) s | \`$*\` |" >>"$REPORT"
  tail -n 3 "$OUT/$name.log"
}

python - <<'PY' >"$REPORT" || { echo "no usable torch"; exit 2; }
import datetime, torch
print(f"# grutool GPU check, {datetime.datetime.now().isoformat(timespec='seconds')}\n")
ok = torch.cuda.is_available()
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version() if ok else None}, "
      f"GPUs: {[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if ok else 'none'}\n")
if not ok:
    raise SystemExit("CUDA is not available here: nothing to check")
print("| step | result | time | command |\n|---|---|---|---|")
PY

step cuda_tests python -m pytest -m cuda -v -rs tests/cuda
step bench_amp grutool bench --device cuda --cells gru,lstm --hidden-size 256,1024 --batch 64 \
  --seq-len 100 --mode infer,train --kernels default,native --dtype float16 -o "$OUT/bench_amp.md" -o "$OUT/bench_amp.json"
step bench_float32 grutool bench --device cuda --cells gru,lstm --hidden-size 256,1024 --batch 64 \
  --seq-len 100 --mode infer,train --kernels default,native --dtype float32 -o "$OUT/bench_float32.md"
step train_sentiment grutool train configs/sentiment.yaml --device cuda -o "$OUT/run-sentiment" --overwrite \
  --set train.epochs=5
step train_tagging_crf grutool train configs/tagging.yaml --device cuda -o "$OUT/run-tagging" --overwrite \
  --set train.epochs=3
step eval_tagging grutool eval "$OUT/run-tagging" --split test --json --device cuda
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  step train_ddp_nccl grutool train configs/sentiment.yaml --device cuda --nproc 2 -o "$OUT/run-ddp" \
    --overwrite --set train.epochs=5
fi
echo >>"$REPORT"
echo "Logs: $OUT/*.log; bench reports: $OUT/bench_*.md" >>"$REPORT"
echo "report: $REPORT"
exit $status
