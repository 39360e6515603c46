#!/usr/bin/env bash
# A local stand-in for `python:3.11-slim`, for machines that cannot pull from a registry but can reach
# Debian's package mirrors: Debian bookworm (minbase) from debootstrap, whose python3 is 3.11, with a
# virtual environment at /usr/local so that, as in the official image, `python` and `pip` are
# /usr/local/bin's and pip installs system-wide (into /usr/local/lib/python3.11/site-packages, without
# Debian's EXTERNALLY-MANAGED refusal and without touching Debian's own python3 packages). Also
# ca-certificates and `useradd` (passwd), which the Dockerfiles use.
#
#   bash docker/base-standin.sh            # builds and imports the image only when the tag is missing
#   bash docker/base-standin.sh --force    # rebuilds it (or FORCE=1)
#
# Run as root (debootstrap, chroot). Environment: DOCKER (the client, default: /usr/bin/docker when
# present, else docker), BASE_TAG (default python:3.11-slim), DEBIAN_MIRROR (default
# http://deb.debian.org/debian), SUITE (default bookworm). Needs the debootstrap package.
# It differs from the real image in the patch release (Debian's 3.11.2 rather than the newest 3.11.x),
# in pip's version (Debian's bundled 23.0.1 in the venv) and in being a single layer.
set -euo pipefail

if [[ -z "${DOCKER:-}" ]]; then
    if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
BASE_TAG=${BASE_TAG:-python:3.11-slim}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
FORCE=${FORCE:-0}
for arg in "$@"; do
    case "$arg" in
        --force | -f) FORCE=1 ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "base-standin.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

if [[ "$FORCE" != 1 ]] && "$DOCKER" image inspect "$BASE_TAG" > /dev/null 2>&1; then
    echo "base-standin.sh: $BASE_TAG is already there ($("$DOCKER" image inspect -f '{{.Id}}' "$BASE_TAG" | cut -c1-19)); --force rebuilds it"
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "base-standin.sh: run as root (debootstrap and chroot)" >&2
    exit 1
fi
command -v debootstrap > /dev/null || { echo "base-standin.sh: apt-get install -y debootstrap" >&2; exit 1; }

work=$(mktemp -d /var/tmp/base-standin.XXXXXX)
rootfs="$work/rootfs"
cleanup() {
    # debootstrap may leave /proc or /sys mounted inside the rootfs when it fails
    for mountpoint in "$rootfs/proc" "$rootfs/sys" "$rootfs/dev/pts"; do
        if mountpoint -q "$mountpoint" 2> /dev/null; then umount -l "$mountpoint" || true; fi
    done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

started=$(date +%s)
echo "base-standin.sh: debootstrap $SUITE (minbase) from $DEBIAN_MIRROR into $rootfs"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
    "$SUITE" "$rootfs" "$DEBIAN_MIRROR" > "$work/debootstrap.log" 2>&1 || {
    tail -n 40 "$work/debootstrap.log" >&2
    echo "base-standin.sh: debootstrap failed" >&2
    exit 1
}

# The official image's layout: a Python whose prefix is /usr/local, pip unrestricted there.
chroot "$rootfs" /usr/bin/python3 -m venv /usr/local
chroot "$rootfs" /bin/sh -c 'set -e
    [ -x /usr/local/bin/python ] && [ -x /usr/local/bin/pip ]
    ln -sf pip /usr/local/bin/pip3
    [ -e /usr/local/bin/python3 ] || ln -s python /usr/local/bin/python3
    # EXTERNALLY-MANAGED (/usr/lib/python3.11) binds only the system interpreter, which stays untouched
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/log/apt/* \
        /usr/share/doc/* /usr/share/man/* /usr/share/info/* /tmp/* /root/.cache
    find / -xdev -name __pycache__ -type d -prune -exec rm -rf {} +'
# Host networking provides resolv.conf and hosts at run time; do not bake the builder's in.
: > "$rootfs/etc/resolv.conf"
echo "$SUITE-python3.11-slim-standin" > "$rootfs/etc/hostname"

python_version=$(chroot "$rootfs" /usr/local/bin/python -c 'import platform; print(platform.python_version())')
pip_version=$(chroot "$rootfs" /usr/local/bin/pip --version | cut -d' ' -f2)
echo "base-standin.sh: Python $python_version, pip $pip_version; importing as $BASE_TAG"
tar --numeric-owner -C "$rootfs" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PYTHON_VERSION=$python_version" \
    --change 'CMD ["python3"]' \
    --message "stand-in for python:3.11-slim: Debian $SUITE minbase, venv at /usr/local (docker/base-standin.sh)" \
    - "$BASE_TAG"

"$DOCKER" run --rm --network host "$BASE_TAG" sh -c \
    'python --version && pip --version && command -v useradd && test -s /etc/ssl/certs/ca-certificates.crt'
echo "base-standin.sh: $BASE_TAG built in $(($(date +%s) - started)) s, $("$DOCKER" image inspect -f '{{.Size}}' "$BASE_TAG" | awk '{printf "%.0f MB", $1/1e6}')"
