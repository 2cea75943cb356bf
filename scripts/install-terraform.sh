#!/usr/bin/env bash
# Install a pinned Terraform release into /usr/local/bin (used by .travis.yml).
set -euo pipefail
version="${1:?usage: install-terraform.sh VERSION}"
if terraform version 2>/dev/null | grep -q "v${version}\$"; then exit 0; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -sSfL -o "$tmp/tf.zip" "https://releases.hashicorp.com/terraform/${version}/terraform_${version}_linux_amd64.zip"
sudo unzip -o -q -d /usr/local/bin "$tmp/tf.zip"
terraform version
