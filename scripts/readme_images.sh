#!/usr/bin/env bash
# Regenerates the pictures in docs/images/ that the README shows, with the release binary.
# Run from anywhere: `bash scripts/readme_images.sh`. The runs are seeded, so the pictures only
# change when the code does.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p gradus-cli
gradus=target/release/gradus
mkdir -p docs/images

# Optimizer paths on Rosenbrock's valley from (-1.2, 1), 500 steps each at their default learning
# rates: plain gradient descent crawls, momentum zigzags down the valley to (1, 1),
# Adam follows it more slowly.
"$gradus" surface rosenbrock --optimizers sgd,momentum,adam --plot docs/images/surface_rosenbrock.png

# Loss and accuracy curves of four optimizers training the default MLP on the built-in digits.
"$gradus" compare --dataset digits --optimizers sgd,momentum,adam,rmsprop --epochs 15 \
  --plot docs/images/compare_optimizers.png
