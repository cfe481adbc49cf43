#!/usr/bin/env bash
# sluice-topo as a user meets it: output contracts and exit statuses.
# Usage: test_cli.sh SLUICE_TOPO TOPOLOGY_DIR
set -uo pipefail
topo=${1:?usage: test_cli.sh SLUICE_TOPO TOPOLOGY_DIR}
dir=${2:?usage: test_cli.sh SLUICE_TOPO TOPOLOGY_DIR}
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then echo "PASS: $what"; passed=$((passed + 1)); else echo "FAIL: $what"; failed=$((failed + 1)); fi; }

out=$("$topo" show --xml "$dir/coral-lassen.xml")
# Lassen: GPU0/GPU1 under one PLX switch (PIX), GPU2/3 on the other socket (SYS), mlx5_0/1
# on another host bridge of socket 0 (NODE).
check "show: GPU0 row as nvidia-smi topo -m prints it" grep -Eq '^GPU0 +X +PIX +SYS +SYS +NODE +NODE +SYS +SYS +8-87 +0$' <<<"$out"
check "show: legend" grep -q 'PIX  = Connection traversing at most a single PCIe bridge' <<<"$out"
out=$("$topo" show --xml "$dir/power8gpudistances.xml")
check "show: NVLink pairs on POWER8 (NV2)" grep -Eq '^GPU0 +X +NV2 +SYS +SYS' <<<"$out"

# Frontier-like (written for the tests): GCD 0's xGMI peers 1, 3, 4; its Slingshot NIC hsn0
# on its root complex (PHB); the I210 is not in the matrix and is marked left out.
out=$("$topo" show --xml "$dir/frontier-mi250x-slingshot.xml")
check "show: xGMI pairs (XGMI), Slingshot NICs only" grep -Eq '^GPU0 +X +XGMI +SYS +XGMI +XGMI +SYS +SYS +SYS +PHB +SYS +SYS +SYS +48-63,112-127 +3$' <<<"$out"
check "show: XGMI legend line" grep -q '^  XGMI = Connection traversing AMD xGMI' <<<"$out"
check "show: hsn2 used" grep -q '^  hsn2: 0000:d5:00.0 (network interface; Slingshot, fabric, PCIe 31.5 GB/s): used$' <<<"$out"
check "show: the management port left out, and why" grep -q '^  enp215s0: .*: left out (other Ethernet, while fabric NICs exist)$' <<<"$out"
out=$("$topo" show --xml "$dir/frontier-mi250x-slingshot.xml" --exclude-nics 'hsn[0-2]')
check "show --exclude-nics: excluded NICs marked" grep -q '^  hsn1: .*: left out (excluded by exclude_nics=hsn\[0-2\])$' <<<"$out"
out=$("$topo" bind --xml "$dir/r750xa-ib-1gbe.xml" --tasks 2 --nics 'eno*' --json)
# 2 tasks of 2 GPUs; one NIC per GPU, least used first: each task gets both ports.
check "bind --nics: the 1 GbE ports when the site asks" grep -q '"task":0,"gpus":\[0,1\],"nics":\["eno1","eno2"\]' <<<"$out"
"$topo" bind --xml "$dir/r750xa-ib-1gbe.xml" --tasks 2 --nics 'hsn*' >/dev/null 2>err.txt
rc=$?
check "bind --nics naming no NIC: exit 1 with the NICs there are (rc $rc)" bash -c "[[ $rc -eq 1 ]] && grep -q 'names none of the NICs .*(eno1, eno2, mlx5_0)' err.txt"
"$topo" show --xml "$dir/r750xa-ib-1gbe.xml" --nics 'mlx5_[0' >/dev/null 2>err.txt
rc=$?
check "show --nics malformed: exit 1 saying what is wrong (rc $rc)" bash -c "[[ $rc -eq 1 ]] && grep -q \"'\[' without its '\]'\" err.txt"

out=$("$topo" bind --xml "$dir/coral-lassen.xml" --gpus 0-3 --tasks 2 --policy pack --json)
check "bind --json: the documented contract" grep -q '"tasks":\[{"task":0,"gpus":\[0,1\],"nics":\["mlx5_0","mlx5_1"\],"cpus":"8-87","numa":\[0\]' <<<"$out"

out=$("$topo" gres-conf --xml "$dir/nvidiaDGX2.xml" --nodes 'dgx[1-4]')
check "gres-conf: NVSwitch GPUs count as fully linked (NV6)" grep -q '^NodeName=dgx\[1-4\] Name=gpu File=/dev/nvidia0 .*Links=-1,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6$' <<<"$out"
check "gres-conf: the NodeName shape line" grep -q '^# NodeName=dgx\[1-4\] Sockets=2 ' <<<"$out"

"$topo" bind --xml "$dir/coral-lassen.xml" --gpus 7 --tasks 2 >/dev/null 2>err.txt
rc=$?
check "bad GPU index: exit 1 with the reason (rc $rc)" bash -c "[[ $rc -eq 1 ]] && grep -q 'GPU index 7 is not on this node' err.txt"
"$topo" bind --xml "$dir/coral-lassen.xml" --tasks 0 >/dev/null 2>&1
check "usage error: exit 2 (rc $?)" test $? -eq 2
"$topo" show --xml /etc/hostname >/dev/null 2>err.txt
rc=$?
check "not an XML export: exit 1 naming the file (rc $rc)" bash -c "[[ $rc -eq 1 ]] && grep -q \"'/etc/hostname'\" err.txt"
rm -f err.txt
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
