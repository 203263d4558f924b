#!/usr/bin/env bash
# Runs on the device machine, from the repository root, with .gl (Vulkan loader .debs) and .gpu carried.
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p /tmp/nodebin && xz -dc .gpu/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
tar -xJf .gpu/modules.tar.xz
nvidia-smi -L; ls "$VK_DRIVER_FILES" || true
/tmp/nodebin/node bench/gpu/check.mjs 2>&1 | tee "$OUT/gpu.log"
