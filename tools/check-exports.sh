#!/usr/bin/env bash
# libember.so exports exactly the functions include/ember.h declares (EMBER_API), nothing else,
# and its SONAME is libember.so.<EMBER_VERSION_MAJOR of the header>.
#   bash tools/check-exports.sh build/libember.so [include/ember.h]
set -euo pipefail
lib="$1"
header="${2:-$(dirname "$0")/../include/ember.h}"
want=$(sed -n 's/^EMBER_API[^(]*[^a-z0-9_]\(ember_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u)
have=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
leaked=$(comm -13 <(echo "$want") <(echo "$have"))
missing=$(comm -23 <(echo "$want") <(echo "$have"))
major=$(sed -n 's/^#define EMBER_VERSION_MAJOR \([0-9]*\).*/\1/p' "$header")
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
rc=0
if [ -n "$leaked" ]; then
    echo "check-exports: $lib exports $(echo "$leaked" | wc -l) symbols that ember.h does not declare:"
    echo "$leaked" | sed 's/^/  /'
    rc=1
fi
if [ -n "$missing" ]; then
    echo "check-exports: $lib lacks $(echo "$missing" | wc -l) functions that ember.h declares:"
    echo "$missing" | sed 's/^/  /'
    rc=1
fi
if [ "$soname" != "libember.so.$major" ]; then
    echo "check-exports: SONAME of $lib is '$soname', not libember.so.$major"
    rc=1
fi
[ $rc = 0 ] && echo "check-exports: $lib ($soname) exports the $(echo "$have" | wc -l) functions of ember.h and nothing else"
exit $rc
