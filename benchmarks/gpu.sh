#!/usr/bin/env bash
# The GPU measurements in one command, on a machine with a GPU: about 8 minutes.
#
#   bash benchmarks/gpu.sh           # suite (gpu preset) + eager step -> benchmarks/results/gpu/
#   bash benchmarks/gpu.sh --smoke   # the same path end to end in a few minutes, on any device
#
# JAX runs on jax.devices()[0] (the script prints it and warns when that is no GPU); torch
# runs on CUDA beside it. The suite starts no case after 300 s (the 1000-leaf cases, whose
# compiles are the slowest, come last) and writes its JSON after every case, so a run cut short
# still renders (its report says which cases ran). Results: results.json/.md, step_time.png,
# ratios.png, bandwidth.png, eager_step.json/.md (7 files). RESULTS_DIR overrides the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
dir=${RESULTS_DIR:-benchmarks/results/gpu}
mkdir -p "$dir"

"$py" - <<'EOF'
import jax
print("JAX devices:", jax.devices())
if jax.default_backend() != "gpu":
    print("warning: no GPU: measuring on", jax.default_backend())
EOF

if [[ ${1:-} == --smoke ]]; then
  suite=(--preset smoke --workloads single-16M 1000x1k --variants plain int8)
  eager=(--rounds 3 --calls 2)
  limit=600
else
  suite=(--preset gpu --budget-s 300)
  eager=()
  limit=390
fi
# A step cut short or failing leaves the other's results: report its status, go on.
timeout "$limit" "$py" benchmarks/run.py "${suite[@]}" --out "$dir" --no-render ||
  echo "run.py stopped with status $?" >&2
timeout 90 "$py" benchmarks/eager_step.py "${eager[@]}" --min-ratio 0 \
  --out "$dir/eager_step.json" >/dev/null || echo "eager_step.py stopped with status $?" >&2
"$py" benchmarks/render.py "$dir"
