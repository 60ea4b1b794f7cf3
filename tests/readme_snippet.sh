#!/bin/sh
# The README's first ```cpp block after the line naming FILE (in backquotes) is FILE from its first
# #include to its end: the snippet compiles as written, since FILE is built.
# Usage: readme_snippet.sh SOURCE_DIR FILE (FILE relative to SOURCE_DIR)
set -eu
root="$1"
file="$2"
block=$(mktemp)
source=$(mktemp)
trap 'rm -f "$block" "$source"' EXIT
awk -v name="\`$file\`" '
    !named && index($0, name) { named = 1; next }
    named && !inside && /^```cpp/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }
' "$root/README.md" >"$block"
sed -n '/^#include/,$p' "$root/$file" >"$source"
if [ ! -s "$block" ] || ! diff -u "$source" "$block"; then
    echo "README.md: the block after \`$file\` is not that file (- the file, + the README)"
    exit 1
fi
