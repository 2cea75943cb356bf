#!/usr/bin/env bash
# Install Terraform VERSION (linux_amd64) into /usr/local/bin, or $TERRAFORM_INSTALL_DIR, for CI.
# The zip's SHA-256 must equal SHA256 (HashiCorp's published checksum, pinned next to the
# version in the CI file) before anything is unzipped or installed.
# Usage: install-terraform.sh VERSION SHA256
set -euo pipefail
version="${1:?usage: install-terraform.sh VERSION SHA256}"
expected="${2:?usage: install-terraform.sh VERSION SHA256}"
dest="${TERRAFORM_INSTALL_DIR:-/usr/local/bin}"

if command -v terraform >/dev/null 2>&1 && terraform version | head -n 1 | grep -qx "Terraform v${version}"; then
  echo "terraform ${version} is already installed"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -sSfL --retry 3 -o "$tmp/terraform.zip" \
  "https://releases.hashicorp.com/terraform/${version}/terraform_${version}_linux_amd64.zip"
if ! echo "${expected}  $tmp/terraform.zip" | sha256sum --check --strict --quiet -; then
  echo "install-terraform.sh: the download's SHA-256 is $(sha256sum "$tmp/terraform.zip" | cut -d ' ' -f 1)," \
       "not the pinned ${expected}: not installing it" >&2
  exit 1
fi
unzip -o -q -d "$tmp" "$tmp/terraform.zip" terraform
if [ -w "$dest" ]; then
  install -m 0755 "$tmp/terraform" "$dest/terraform"
else
  sudo install -m 0755 "$tmp/terraform" "$dest/terraform"
fi
"$dest/terraform" version
