#!/bin/sh
# check-hardening.sh ELF... - prove the release hardening on built binaries with readelf (what
# Debian's hardening-check looks at): PIE (programs), full RELRO (GNU_RELRO + BIND_NOW), a
# non-executable stack, the stack protector (__stack_chk_fail linked) and _FORTIFY_SOURCE
# (some __*_chk function linked). Prints one line per file and exits 1 if any check fails.
set -u
bad=0
printf '%-28s %-5s %-6s %-5s %-7s %-7s %s\n' file pie relro now nxstack canary fortified
for f in "$@"; do
    [ -f "$f" ] || { echo "check-hardening: $f missing"; bad=1; continue; }
    hdr=$(readelf -hW "$f")
    dyn=$(readelf -dW "$f")
    seg=$(readelf -lW "$f")
    syms=$(readelf --dyn-syms -W "$f")
    case $f in *.so*) shared=1 ;; *) shared=0 ;; esac
    pie=n/a
    if [ "$shared" = 0 ]; then
        if echo "$hdr" | grep -q 'Type:.*DYN' && echo "$dyn" | grep -q 'FLAGS_1.*PIE'; then
            pie=yes
        else
            pie=NO
        fi
    fi
    relro=NO; echo "$seg" | grep -q GNU_RELRO && relro=yes
    now=NO; echo "$dyn" | grep -qE 'BIND_NOW|FLAGS_1.*NOW' && now=yes
    nx=NO; echo "$seg" | grep GNU_STACK | grep -qv 'RWE' && nx=yes
    canary=NO; echo "$syms" | grep -q '__stack_chk_fail' && canary=yes
    chk=$(echo "$syms" | grep -oE '__[a-z0-9_]+_chk' | sort -u | wc -l)
    fort=NO; [ "$chk" -gt 0 ] && fort="yes ($chk _chk functions)"
    printf '%-28s %-5s %-6s %-5s %-7s %-7s %s\n' "$(basename "$f")" "$pie" "$relro" "$now" "$nx" \
        "$canary" "$fort"
    case "$pie $relro $now $nx $canary $fort" in
    *NO*) bad=1 ;;
    esac
done
if [ "$bad" = 0 ]; then
    echo "check-hardening: every binary is hardened"
else
    echo "check-hardening: FAILED (built with HARDEN=0, or flags that override the defaults?)"
fi
exit "$bad"
