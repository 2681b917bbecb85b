#!/usr/bin/env bash
# tests/install.sh: make install into a staging directory, as a packager
# does, and check what landed there:
#   - make install DESTDIR=$tmp PREFIX=/usr puts the programs, the man
#     pages, the docs and the systemd unit in place, with their modes;
#   - the installed programs run (--version);
#   - each man page lints clean (mandoc -T lint, man --warnings) and
#     documents every long option its program's --help lists;
#   - the installed unit's ExecStart is PREFIX/bin/fibd, and systemd-analyze
#     verify passes on it (a copy whose ExecStart points into DESTDIR: verify
#     wants the binary at that path; it needs no running systemd);
#   - make uninstall removes every file; the default PREFIX is /usr/local.
#
# Usage: tests/install.sh   (from anywhere; builds what make install needs)
# A check whose tool is absent (mandoc, man, systemd-analyze) is skipped
# with a line saying so; scripts/deps installs them as root.
# Ends with "install: N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d /tmp/fibd-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
passed=0 failed=0

result() { # result NAME STATUS [DETAIL]
	if [ "$2" = 0 ]; then
		echo "ok $1"
		passed=$((passed + 1))
	else
		echo "FAIL $1${3:+: $3}"
		failed=$((failed + 1))
	fi
}
skip() { echo "SKIP $1: $2 not installed (scripts/deps installs it)"; }
finish() {
	echo "install: $passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}

out=$(make -s install DESTDIR="$root" PREFIX=/usr 2>&1)
result "make install DESTDIR=\$tmp PREFIX=/usr" $? "$out"
[ "$failed" = 0 ] || finish

# --- every file in place, with its mode -----------------------------------
want="usr/lib/systemd/system/fibd.service:644 usr/share/doc/fibd/README.md:644"
for p in fibd fibload fib; do
	want="$want usr/bin/$p:755 usr/share/man/man1/$p.1:644"
done
for d in docs/*.md; do
	want="$want usr/share/doc/fibd/${d#docs/}:644"
done
bad=""
for w in $want; do
	f=${w%:*} mode=${w##*:}
	if [ ! -f "$root/$f" ]; then
		bad="$bad $f (missing)"
	elif [ "$(stat -c %a "$root/$f")" != "$mode" ]; then
		bad="$bad $f (mode $(stat -c %a "$root/$f"), want $mode)"
	fi
done
result "programs, man pages, docs and unit installed under /usr" \
	"$([ -z "$bad" ]; echo $?)" "$bad"

for p in fibd fibload fib; do
	out=$("$root/usr/bin/$p" --version 2>&1)
	echo "$out" | grep -q "^$p [0-9]"
	result "installed $p --version runs ($out)" $? "$out"
done

# --- man pages ---------------------------------------------------------------
for p in fibd fibload fib; do
	page=$root/usr/share/man/man1/$p.1
	if command -v mandoc >/dev/null; then
		out=$(mandoc -T lint "$page" 2>&1)
		result "mandoc -T lint $p.1: no message" \
			"$([ -z "$out" ]; echo $?)" "$out"
	else
		skip "mandoc -T lint $p.1" mandoc
	fi
	if command -v man >/dev/null; then
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 \
			-l "$page" 2>&1 >/dev/null)
		result "man --warnings -l $p.1: no warning" \
			"$([ -z "$out" ]; echo $?)" "$out"
	else
		skip "man --warnings -l $p.1" man-db
	fi
	# Every long option --help names is in the page (\- is a hyphen).
	missing=$(comm -23 \
		<("$root/usr/bin/$p" --help 2>&1 |
			grep -oE -- '--[a-z][a-z-]*[a-z]' | sort -u) \
		<(sed 's/\\-/-/g' "$page" |
			grep -oE -- '--[a-z][a-z-]*[a-z]' | sort -u))
	result "$p.1 documents every option of $p --help" \
		"$([ -z "$missing" ]; echo $?)" "missing: $(echo "$missing" | tr "\n" " ")"
done

# --- the systemd unit ----------------------------------------------------------
unit=$root/usr/lib/systemd/system/fibd.service
exec_start=$(grep '^ExecStart=' "$unit")
case $exec_start in
ExecStart=/usr/bin/fibd\ *) ok=0 ;;
*) ok=1 ;;
esac
! grep -v '^#' "$unit" | grep -q '/usr/local' || ok=1
result "unit: ExecStart=/usr/bin/fibd, no setting left under /usr/local" \
	$ok "$exec_start"
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$tmp/verify"
	sed "s|^ExecStart=/usr/bin/|ExecStart=$root/usr/bin/|" "$unit" \
		>"$tmp/verify/fibd.service"
	# MANPATH: verify also looks up Documentation=man:fibd(1).
	out=$(MANPATH=$root/usr/share/man SYSTEMD_LOG_COLOR=0 \
		systemd-analyze verify "$tmp/verify/fibd.service" 2>&1)
	rc=$?
	result "systemd-analyze verify on the installed unit: no message" \
		"$([ "$rc" = 0 ] && [ -z "$out" ]; echo $?)" "$out"
else
	skip "systemd-analyze verify" systemd
fi

# --- make uninstall, and the default PREFIX ------------------------------------
out=$(make -s uninstall DESTDIR="$root" PREFIX=/usr 2>&1)
left=$(find "$root" -type f)
result "make uninstall removes every file" \
	"$([ -z "$left" ]; echo $?)" "$out $left"

out=$(make -s install DESTDIR="$tmp/local" 2>&1)
[ -x "$tmp/local/usr/local/bin/fibd" ] &&
	grep -q '^ExecStart=/usr/local/bin/fibd ' \
		"$tmp/local/usr/local/lib/systemd/system/fibd.service"
result "make install with the default PREFIX: /usr/local" $? "$out"
finish
