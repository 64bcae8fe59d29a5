#!/usr/bin/env bash
# Writes TEST-ONLY copies of two standard-library files into DIR and prints
# the path of a `go build -overlay` file that uses them:
#   - net/fd_windows.go tolerates WSAEOPNOTSUPP (winapi error 10045) from
#     the two UDP socket ioctls in netFD.init (SIO_UDP_CONNRESET,
#     SIO_UDP_NETRESET), which Wine 8 does not implement: without it every
#     UDP socket fails to open under Wine;
#   - internal/syscall/windows/at_windows.go: Deleteat (os.Root.Remove, and
#     so os.RemoveAll and every t.TempDir cleanup) falls back to the old
#     delete disposition on any error of FILE_DISPOSITION_INFORMATION_EX,
#     which Wine 8 answers "Invalid function".
# On real Windows both first calls succeed and nothing changes. Only
# .ci/wine.sh uses this; the shipped binary is built from the unmodified
# library.
set -euo pipefail
dir=$1
src=$(go env GOROOT)/src/net/fd_windows.go
dst=$dir/fd_windows.go
# Both ioctls' error checks read `if err != nil {\n return wrapSyscallError("wsaioctl", err)`.
awk '
	/err := syscall.WSAIoctl\(fd.pfd.Sysfd, syscall.SIO_UDP_CONNRESET/ || /err = syscall.WSAIoctl\(fd.pfd.Sysfd, windows.SIO_UDP_NETRESET/ { print; patch = 1; next }
	patch && /if err != nil \{/ { print "\t\tif err != nil && err != syscall.Errno(10045) { // fxsh CI: Wine lacks this ioctl"; patch = 0; n++; next }
	{ print }
	END { if (n != 2) { print "netfd_overlay: expected 2 ioctl checks, patched " n > "/dev/stderr"; exit 1 } }
' "$src" >"$dst"
src2=$(go env GOROOT)/src/internal/syscall/windows/at_windows.go
dst2=$dir/at_windows.go
grep -c 'return err.(NTStatus).Errno()' "$src2" | grep -qx 1 || { echo "netfd_overlay: Deleteat changed in this Go" >&2; exit 1; }
sed 's|return err.(NTStatus).Errno()|return deleteatFallback(h) // fxsh CI: Wine 8 lacks FILE_DISPOSITION_INFORMATION_EX|' "$src2" >"$dst2"
printf '{"Replace":{"%s":"%s","%s":"%s"}}\n' "$src" "$dst" "$src2" "$dst2" >"$dir/overlay.json"
echo "$dir/overlay.json"
