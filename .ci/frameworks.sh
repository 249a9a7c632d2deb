#!/usr/bin/env bash
# The real frameworks that tests/test_presets.py runs beside torch and Keras, each set in a venv
# of its own under $OPTAX_RMSPROP_FRAMEWORKS (default $TMPDIR/optax_rmsprop-frameworks), where the
# tests run tests/frameworks/run.py:
# - tensorflow: TensorFlow (TF1's RMSPropOptimizer), tf_keras and Paddle, on numpy 2. They would
#   install beside the test environment too, but pull its h5py and opt_einsum back to older
#   releases; Paddle warns on import (an error under pytest's filterwarnings=error), and TF and
#   Paddle in one process crash: the tests run each in a process of its own.
# - mxnet, chainer: MXNet 1.9.1 and Chainer 7.8.1 need numpy < 1.24.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${OPTAX_RMSPROP_FRAMEWORKS:-${TMPDIR:-/tmp}/optax_rmsprop-frameworks}"
build() {  # build NAME REQUIREMENT...: a fresh venv with these packages, then their versions
  local venv="$root/$1" start=$SECONDS
  shift
  rm -rf "$venv"
  python -m venv "$venv"
  # Chainer's setup.py imports pkg_resources (gone from setuptools 81): built without isolation.
  "$venv/bin/python" -m pip install --quiet "setuptools<81" wheel
  "$venv/bin/python" -m pip install --quiet --no-build-isolation "$@"
  echo "$venv ($((SECONDS - start)) s): $("$venv/bin/python" tests/frameworks/run.py --versions)"
}
# The three are built at once (mostly downloads and unpacking); each one's output is shown whole.
mkdir -p "$root"
build tensorflow tensorflow==2.21.0 tf_keras==2.21.0 paddlepaddle==3.3.1 >"$root/tensorflow.log" 2>&1 &
build mxnet mxnet==1.9.1 "numpy<1.24" >"$root/mxnet.log" 2>&1 &
build chainer chainer==7.8.1 "numpy<1.24" >"$root/chainer.log" 2>&1 &
failed=0
for _ in tensorflow mxnet chainer; do
  wait -n || failed=1
done
cat "$root"/{tensorflow,mxnet,chainer}.log
exit "$failed"
