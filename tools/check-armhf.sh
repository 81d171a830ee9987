#!/usr/bin/env bash
# Install fable in an emulated 32-bit ARM Debian (armhf, bookworm: what Raspberry Pi OS 32-bit is
# built on) exactly as the README's "32-bit Raspberry Pi OS" section says, and run it there. PyPI has
# no onnxruntime for armv7l, so this proves the numpy backend and the packaging that leaves
# onnxruntime out. Needs root, debootstrap, qemu-user-static and binfmt_misc; where they cannot be
# had it says why and exits 0 (skipped). The chroot is kept in $FABLE_ARMHF_CHROOT for reruns.
#   tools/check-armhf.sh [LOG]      # LOG: also write the output there
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chroot_dir=${FABLE_ARMHF_CHROOT:-/var/tmp/fable-armhf-bookworm}
log=${1:-/dev/null}
exec > >(tee "$log") 2>&1

skip() { echo "check-armhf: skipped: $*"; exit 0; }
say() { echo "check-armhf: $*"; }

[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot, binfmt_misc)"
if ! command -v debootstrap >/dev/null || ! command -v qemu-arm-static >/dev/null; then
  command -v apt-get >/dev/null || skip "no apt-get to install debootstrap and qemu-user-static"
  say "installing debootstrap, qemu-user-static, binfmt-support"
  { apt-get update -q && apt-get install -y -q debootstrap qemu-user-static binfmt-support; } >/dev/null \
    || skip "could not install debootstrap and qemu-user-static"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || skip "cannot mount binfmt_misc here"
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-arm ] || update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
[ -e /proc/sys/fs/binfmt_misc/qemu-arm ] || skip "no binfmt_misc entry for qemu-arm"

started=$(date +%s)
if [ ! -e "$chroot_dir/.fable-built" ]; then
  say "building an armhf Debian bookworm in $chroot_dir (a few minutes, once)"
  rm -rf "$chroot_dir"
  debootstrap --arch=armhf --variant=minbase --include=ca-certificates bookworm "$chroot_dir" >/dev/null \
    || skip "debootstrap could not build the chroot (no network to Debian?)"
  touch "$chroot_dir/.fable-built"
fi
cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$chroot_dir/etc/ssl/certs/host-ca.crt"  # pip trusts what the host trusts
mkdir -p "$chroot_dir/proc" && mountpoint -q "$chroot_dir/proc" || mount -t proc proc "$chroot_dir/proc"  # no /sys: not needed, not shared
trap 'umount "$chroot_dir/proc" 2>/dev/null || true' EXIT
rm -rf "$chroot_dir/opt/fable-src" && mkdir -p "$chroot_dir/opt/fable-src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard 2>/dev/null | xargs -0 tar -cf - \
  || tar --exclude=.venv --exclude=.git -cf - .) \
  | tar -xf - -C "$chroot_dir/opt/fable-src"

in_chroot() {
  chroot "$chroot_dir" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore /bin/sh -ec "$1"
}

say "the README's steps, inside the chroot"
in_chroot '
  apt-get install -y -q python3-numpy python3-venv >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q python3-numpy python3-venv >/dev/null; }
  [ -x /opt/fable-venv/bin/pip ] || python3 -m venv --system-site-packages /opt/fable-venv
  /opt/fable-venv/bin/pip install -q --force-reinstall --no-deps /opt/fable-src >/dev/null
  /opt/fable-venv/bin/pip install -q /opt/fable-src >/dev/null
  if /opt/fable-venv/bin/python -c "import onnxruntime" 2>/dev/null; then echo "onnxruntime is installed here"; exit 1; fi
  echo "$(uname -m), Python $(python3 -c "import platform; print(platform.python_version())"), numpy $(python3 -c "import numpy; print(numpy.__version__)") from Debian; no onnxruntime"'
armhf=$(in_chroot 'cd /tmp && /opt/fable-venv/bin/fable-run "the old mouse"')
say "armhf:  $armhf"
in_chroot 'cd /tmp && /opt/fable-venv/bin/fable-run --info | grep -E "^(backend|file) "'
in_chroot 'cd /tmp && /opt/fable-venv/bin/fable-bench --words 200'

host_run=$(command -v fable-run || ls "$root/.venv/bin/fable-run" 2>/dev/null || true)
if [ -z "$host_run" ]; then
  say "no fable-run on this host to compare with; expected the golden words"
  case "$armhf" in "the old mouse said it is easy to propose impossible remedies. "*) ;; *) exit 1 ;; esac
else
  x86=$("$host_run" "the old mouse")
  say "$(uname -m): $x86"
  [ "$armhf" = "$x86" ] || { say "the words differ"; exit 1; }
  say "the same words on both"
fi
stream_args='-m /opt/fable-src/tests/data/stream.onnx -n 16 "you may convey a covered work"'
armhf_stream=$(in_chroot "cd /tmp && /opt/fable-venv/bin/fable-run $stream_args")
say "armhf, a model that reads the whole text, with its cache: $armhf_stream"
if [ -n "$host_run" ]; then
  host_stream=$(eval "\"$host_run\" ${stream_args//\/opt\/fable-src/$root}")
  [ "$armhf_stream" = "$host_stream" ] || { say "the stream model's words differ: $host_stream"; exit 1; }
  say "the same words on both"
fi
say "done in $(( $(date +%s) - started )) s"
