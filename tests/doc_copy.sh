#!/bin/sh
# A copy in the documentation is what it copies: the first ``` block after the first line of DOC
# naming NAME (in backquotes) is the file NAME, from its first #include on for C++ (so that the
# snippet compiles as written, since the file is built), or, with a COMMAND, that command's output.
# Trailing blanks are not compared (program_options pads its help lines with them).
# Usage: doc_copy.sh SOURCE_DIR DOC NAME [COMMAND ...]   (DOC and NAME relative to SOURCE_DIR)
set -eu
root="$1"
doc="$2"
name="$3"
shift 3
block=$(mktemp)
source=$(mktemp)
trap 'rm -f "$block" "$source"' EXIT
awk -v name="\`$name\`" '
    !named && index($0, name) { named = 1; next }
    named && !inside && /^```/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { sub(/[ \t]+$/, ""); print }
' "$root/$doc" >"$block"
if [ $# -gt 0 ]; then
    "$@" | sed 's/[ \t]*$//' >"$source"
else
    case "$name" in
    *.cpp | *.hpp) sed -n '/^#include/,$p' "$root/$name" >"$source" ;;
    *) cat "$root/$name" >"$source" ;;
    esac
fi
if [ ! -s "$block" ] || ! diff -u "$source" "$block"; then
    echo "$doc: the block after \`$name\` is not $(if [ $# -gt 0 ]; then echo "the output of $*"; else echo that file; fi) (- it, + $doc)"
    exit 1
fi
