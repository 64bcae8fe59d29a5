#!/usr/bin/env bash
# The end-to-end Windows story, run by .ci/wine.sh (which sets WINE,
# WINEPREFIX, FXSH_WINE_WORK and FXSH_WINE_OVERLAY): on 127.0.0.1, a master
# and a file server run as fxsh.exe under Wine, a second file server runs as
# the Linux fxsh (a classroom's Linux laptop, holding names Windows cannot),
# and a client runs as fxsh.exe under Wine:
#   - a 20 MB file from the Wine file server arrives byte-identical, the
#     folder shared and the download folder typed as Windows paths
#     (Z:\tmp\…, backslashes);
#   - Report.TXT and report.txt (different contents, one name on Windows):
#     one `get` of both is refused up front; each with -o into its own folder
#     arrives with its own bytes, and with --as side by side too;
#   - aux.c (a device name on Windows) is refused cleanly, naming the file
#     and `get aux.c --as NEWNAME`, which then saves it byte-identical.
# fxsh.exe here is built with the test-only net overlay (see wine.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
: "${WINE:?run through .ci/wine.sh}" "${FXSH_WINE_WORK:?}" "${FXSH_WINE_OVERLAY:?}"
w=$FXSH_WINE_WORK/story
mkdir -p "$w"
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap stop EXIT
fail() { echo "story: $*" >&2; for f in "$w"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2; exit 1; }

GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go build -tags noetcd -overlay "$FXSH_WINE_OVERLAY" -o "$w/fxsh.exe" . # as released
CGO_ENABLED=0 go build -o "$w/fxsh" .
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
M=127.0.0.1:$port

mkdir -p "$w/winshare" "$w/linshare" "$w/client"
head -c 20000000 /dev/urandom >"$w/winshare/big.bin"
head -c 300000 /dev/urandom >"$w/linshare/Report.TXT"
head -c 200000 /dev/urandom >"$w/linshare/report.txt"
head -c 5000 /dev/urandom >"$w/linshare/aux.c"

(cd "$w" && exec "$WINE" ./fxsh.exe --norc -c "serve master $M" >master.log 2>&1) & pids+=($!)
for _ in $(seq 100); do "$w/fxsh" --norc --master "$M" -c 'list' >/dev/null 2>&1 && break; sleep 0.3; done
# winpath PATH: the Windows path Wine gives a Linux one (drive Z: is /),
# typed with backslashes as a Windows user types it: fxsh on Windows reads
# a backslash as a character, not an escape.
winpath() { printf 'Z:%s' "${1//\//\\}"; }
(cd "$w" && exec "$WINE" ./fxsh.exe --norc --master "$M" -c "share $(winpath "$w/winshare") --udp 127.0.0.1:0" >winshare.log 2>&1) & pids+=($!)
(cd "$w" && exec ./fxsh --norc --master "$M" -c 'share linshare --udp 127.0.0.1:0' >linshare.log 2>&1) & pids+=($!)
for _ in $(seq 200); do
	l=$("$w/fxsh" --norc --master "$M" -c 'list' 2>/dev/null || true)
	grep -q big.bin <<<"$l" && grep -q aux.c <<<"$l" && break
	sleep 0.3
done
grep -q big.bin <<<"$l" && grep -q aux.c <<<"$l" || fail "the two file servers did not register"

client() { (cd "$w/client" && "$WINE" ../fxsh.exe --norc --master "$M" -c "$1" >"$w/client.log" 2>&1); }

# 20 MB, Windows to Windows.
t0=$SECONDS
client "get big.bin -o $(winpath "$w/client/dl"); wait" || fail "get big.bin -o $(winpath "$w/client/dl")"
cmp "$w/winshare/big.bin" "$w/client/dl/big.bin" || fail "big.bin differs"
echo "  20 MB file byte-identical ($((SECONDS - t0)) s with Wine's start-up), shared and saved with typed Windows paths ($(winpath "$w/client/dl"))"

# Case twins: one get of both is refused before any job starts.
if client 'get Report.TXT report.txt -o twins'; then fail "get Report.TXT report.txt into one folder succeeded under Wine"; fi
grep -q 'are one file name in' "$w/client.log" || fail "case twins: no clear refusal"
grep -q '^job' "$w/client.log" && fail "case twins: a job started"
echo "  get Report.TXT report.txt into one folder: refused: $(grep -o '"Report.TXT" and "report.txt" are one file name[^:]*' "$w/client.log")"
client 'get Report.TXT -o up; get report.txt -o low; get report.txt -o side --as report-lower.txt; get Report.TXT -o side; wait' || fail "get the twins"
cmp "$w/linshare/Report.TXT" "$w/client/up/Report.TXT" || fail "Report.TXT differs"
cmp "$w/linshare/report.txt" "$w/client/low/report.txt" || fail "report.txt differs"
cmp "$w/linshare/report.txt" "$w/client/side/report-lower.txt" || fail "report.txt --as differs"
cmp "$w/linshare/Report.TXT" "$w/client/side/Report.TXT" || fail "Report.TXT beside it differs"
echo "  Report.TXT and report.txt: each with its own bytes (own folders, and side by side with --as)"

# A Windows device name: refused, naming the file and --as; --as saves it.
if client 'get aux.c -o dev'; then fail "get aux.c succeeded under Wine"; fi
grep -q '"aux.c" is not a valid file name' "$w/client.log" || fail "aux.c: no clear refusal"
grep -q 'get aux.c --as NEWNAME' "$w/client.log" || fail "aux.c: no --as hint"
grep -q '^job' "$w/client.log" && fail "aux.c: a job started"
echo "  get aux.c refused: $(grep -o '"aux.c" is not.*' "$w/client.log" | head -1)"
client 'get aux.c -o dev --as aux_.c; wait' || fail "get aux.c --as aux_.c"
cmp "$w/linshare/aux.c" "$w/client/dev/aux_.c" || fail "aux_.c differs"
echo "  get aux.c --as aux_.c: byte-identical"
