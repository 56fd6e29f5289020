#!/usr/bin/env bash
# Bench a bundle on aarch64 under QEMU user-mode emulation, from an x86_64 Debian machine: a functional check
# (every artifact installs, loads and runs on the aarch64 wheels, and its accuracy agrees with the x86 rows),
# never a speed measurement. The rows carry `emulated: true` in their machine block and rank nothing
# (docs/bundle.md, "Arm under QEMU").
#
#   sudo tools/arm_emulated_bench.sh BUNDLE OUT.json [--against results/RUN/bench.json] [options]
#
# Options:
#   --root DIR       the arm64 root file system (default: /var/tmp/edgedistill-arm64); kept between runs,
#                    so a second run skips debootstrap and the apt step
#   --cpu a76|v1     the CPU QEMU imitates and the /proc/cpuinfo the root sees: a76 = Cortex-A76 (Raspberry
#                    Pi 5; NEON, int8 dot product), v1 = Neoverse V1 (Graviton3; SVE, BF16, i8mm). Default a76
#   --suite NAME     the Debian release of the root (default: bookworm: glibc 2.36, Python 3.11)
#   --mirror URL     the Debian mirror (default: the one this machine's apt uses)
#   --bench "ARGS"   edgedistill bench options (default: "--quick --threads 1")
#   --until STEP     stop after STEP: packages | foreign | root | python | install (checks of the first steps)
#
# Steps: (1) Debian packages qemu-user-static, binfmt-support, debootstrap; (2) debootstrap --foreign
# (downloads and unpacks only); (3) binfmt_misc mounted and qemu-aarch64 enabled, then debootstrap's second
# stage inside the root (about 8 min emulated); (4) proc, sys, dev mounted, an Arm-format cpuinfo
# bind-mounted over /proc/cpuinfo (with the x86 host's in view, `import onnxruntime` crashes under QEMU and the fingerprint reports the host);
# (5) python3, venv, pip and CA certificates from apt (about 5 min); (6) this checkout (git archive HEAD) and
# the bundle copied in, `pip install '.[bench]'` from aarch64 wheels under `env -i` (the host's PIP_*
# settings must not leak in); (7) the bench, with QEMU_CPU and EDGEDISTILL_EMULATED=1 set; (8) OUT.json
# copied out and, with --against, the agreement table (python -m tools.emulated_agreement).
# Everything mounted is unmounted at exit, and qemu-aarch64 is disabled again if this script enabled it.
set -euo pipefail

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

ROOT=/var/tmp/edgedistill-arm64
CPU=a76
SUITE=bookworm
MIRROR=
BENCH_ARGS="--quick --threads 1"
AGAINST=
UNTIL=
POSITIONAL=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage 0 ;;
    --root) ROOT=$2; shift 2 ;;
    --cpu) CPU=$2; shift 2 ;;
    --suite) SUITE=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --bench) BENCH_ARGS=$2; shift 2 ;;
    --against) AGAINST=$2; shift 2 ;;
    --until) UNTIL=$2; shift 2 ;;
    -*) echo "arm_emulated_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) POSITIONAL+=("$1"); shift ;;
  esac
done
case "$UNTIL" in ""|packages|foreign|root|python|install) ;;
  *) echo "arm_emulated_bench: --until $UNTIL: one of packages, foreign, root, python, install" >&2; exit 2 ;; esac
if [ -z "$UNTIL" ] && [ ${#POSITIONAL[@]} -ne 2 ]; then
  echo "arm_emulated_bench: pass BUNDLE and OUT.json (see --help)" >&2; exit 2
fi
BUNDLE=${POSITIONAL[0]:-}
OUT=${POSITIONAL[1]:-}
if [ -n "$BUNDLE" ] && [ ! -f "$BUNDLE/bundle.json" ]; then
  echo "arm_emulated_bench: $BUNDLE has no bundle.json; write one with: edgedistill bundle --run runs/RUN --out DIR" >&2
  exit 2
fi
case "$CPU" in
  a76) QEMU_CPU_VALUE=cortex-a76 ;;
  v1) QEMU_CPU_VALUE="max,sme=off,sve-default-vector-length=32" ;;
  *) echo "arm_emulated_bench: --cpu $CPU: a76 (Cortex-A76, Raspberry Pi 5) or v1 (Neoverse V1, Graviton3)" >&2
     exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "arm_emulated_bench: run as root (debootstrap, chroot and mount need it)" >&2; exit 2
fi
if [ "$(uname -m)" != "x86_64" ]; then
  echo "arm_emulated_bench: this host is $(uname -m); on an aarch64 machine bench natively (docs/bundle.md)" >&2
  exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "[arm-emulated $(date +%H:%M:%S)] $*"; }

# An Arm-format /proc/cpuinfo for the root: what an Arm Linux kernel prints for 4 cores of the CPU.
cpuinfo() {
  local features part i
  if [ "$CPU" = v1 ]; then
    features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng"
    part=0xd40
  else
    features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
    part=0xd0b
  fi
  for i in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\n' \
      "$i" "$features"
    printf 'CPU variant\t: 0x4\nCPU part\t: %s\nCPU revision\t: 1\n\n' "$part"
  done
}

MOUNTED=()
ENABLED_BINFMT=
cleanup() {
  local i
  for ((i=${#MOUNTED[@]}-1; i>=0; i--)); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done
  if [ -n "$ENABLED_BINFMT" ]; then update-binfmts --disable qemu-aarch64 >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
mount_once() {   # mount_once ARGS... TARGET: mounted now, unmounted at exit
  local target=${*: -1}
  mount "$@"
  MOUNTED+=("$target")
}

# (1) packages
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ "$UNTIL" = packages ] && { log "stopped after: packages"; exit 0; }

# (2) the root file system: the --foreign stage only downloads and unpacks; the second stage runs arm64 code
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ \
             2>/dev/null | grep -oE 'https?://[^ ]+' | head -n1 || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
  log "debootstrap --foreign $SUITE arm64 from $MIRROR into $ROOT (downloads only)"
  mkdir -p "$ROOT"
  debootstrap --arch=arm64 --foreign --variant=minbase "$SUITE" "$ROOT" "$MIRROR"
fi
cp /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/"
[ "$UNTIL" = foreign ] && { log "stopped after: foreign"; exit 0; }

# (3) binfmt_misc: arm64 binaries run through qemu-aarch64-static
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ "$(head -n1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null)" != enabled ]; then
  update-binfmts --enable qemu-aarch64
  ENABLED_BINFMT=1
fi

if [ -e "$ROOT/debootstrap/debootstrap" ]; then
  log "debootstrap second stage, emulated (about 8 min)"
  QEMU_CPU=$QEMU_CPU_VALUE chroot "$ROOT" /debootstrap/debootstrap --second-stage
fi
cp /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/"

# (4) mounts, and the Arm cpuinfo over the host's
mount_once -t proc proc "$ROOT/proc"
mount_once -t sysfs sys "$ROOT/sys"
mount_once --bind /dev "$ROOT/dev"
mount_once --bind /dev/pts "$ROOT/dev/pts"
cpuinfo > "$ROOT/etc/edgedistill-cpuinfo"
mount_once --bind "$ROOT/etc/edgedistill-cpuinfo" "$ROOT/proc/cpuinfo"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# in_root CMD...: CMD inside the root under a clean environment, QEMU imitating the chosen CPU.
in_root() {
  QEMU_CPU=$QEMU_CPU_VALUE chroot "$ROOT" /usr/bin/env -i QEMU_CPU="$QEMU_CPU_VALUE" HOME=/root LANG=C.UTF-8 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
log "the root sees: $(in_root uname -m), $(in_root grep -m1 'CPU part' /proc/cpuinfo)"
[ "$UNTIL" = root ] && { log "stopped after: root"; exit 0; }

# (5) Python from Debian, and the host's CA certificates (pip verifies its downloads against them)
if [ ! -x "$ROOT/usr/bin/python3" ] || ! in_root python3 -c 'import venv, ensurepip' 2>/dev/null; then
  log "apt-get install python3 python3-venv python3-pip ca-certificates, emulated (about 5 min)"
  in_root apt-get update -qq
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv \
    python3-pip ca-certificates >/dev/null
fi
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/usr/local/share/ca-certificates/host-bundle.crt" 2>/dev/null || true
in_root update-ca-certificates >/dev/null 2>&1 || true
log "glibc in the root: $(in_root ldd --version | head -n1)"
[ "$UNTIL" = python ] && { log "stopped after: python"; exit 0; }

# (6) this checkout and the slim install from aarch64 wheels
rm -rf "$ROOT/opt/edgedistill"
mkdir -p "$ROOT/opt/edgedistill"
git -C "$REPO" archive HEAD | tar -x -C "$ROOT/opt/edgedistill"
if [ ! -x "$ROOT/opt/venv/bin/python" ]; then
  in_root python3 -m venv /opt/venv
fi
log "pip install '.[bench]' from aarch64 wheels, emulated"
in_root sh -c "cd /opt/edgedistill && pip install -q --no-compile -c constraints.txt '.[bench]'"
[ "$UNTIL" = install ] && { log "stopped after: install"; exit 0; }

# (7) the bench, marked emulated
rm -rf "$ROOT/opt/bundle" "$ROOT/opt/out"
cp -a "$BUNDLE" "$ROOT/opt/bundle"
mkdir -p "$ROOT/opt/out"
log "edgedistill bench --bundle ... $BENCH_ARGS, emulated (QEMU_CPU=$QEMU_CPU_VALUE)"
set +e
# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
in_root EDGEDISTILL_EMULATED=1 EDGEDISTILL_MACHINE_NAME="qemu-$CPU" sh -c \
  "cd /opt/out && edgedistill bench --bundle /opt/bundle --out /opt/out/bench.json --no-progress $BENCH_ARGS"
rc=$?
set -e
if [ ! -f "$ROOT/opt/out/bench.json" ]; then
  echo "arm_emulated_bench: the bench wrote no bench.json (exit code $rc)" >&2; exit 2
fi
mkdir -p "$(dirname "$OUT")"
cp "$ROOT/opt/out/bench.json" "$OUT"
log "wrote $OUT (bench exit code $rc); merge it with: edgedistill bench --run runs/RUN --merge $OUT"

# (8) agreement with the native rows
if [ -n "$AGAINST" ]; then
  (cd "$REPO" && "${PYTHON:-python3}" -m tools.emulated_agreement "$OUT" --against "$AGAINST") || rc=1
fi
exit "$rc"
