#!/usr/bin/env bash
# Installs what the PC/SC tests and the smartcard binding need when it is missing: pcscd, the vpcd
# virtual reader driver, OpenSC's tools, Yubico's PIV tools (yubico-piv-tool, ykman: the PIV
# interoperability tests), the PC/SC headers (node-gyp builds the binding against them)
# and iproute2 (the quickack route). Root only; CI runs as root.
set -euo pipefail
need=()
command -v pcscd >/dev/null || need+=(pcscd)
[ -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || need+=(vsmartcard-vpcd)
[ -e /usr/include/PCSC/winscard.h ] || need+=(libpcsclite-dev)
command -v opensc-tool >/dev/null || need+=(opensc)
command -v yubico-piv-tool >/dev/null || need+=(yubico-piv-tool)
command -v ykman >/dev/null || need+=(yubikey-manager)
command -v ip >/dev/null || need+=(iproute2)
command -v ss >/dev/null || need+=(iproute2)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "missing packages: ${need[*]} (run as root or install them)" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
