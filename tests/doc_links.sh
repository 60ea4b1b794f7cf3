#!/bin/sh
# Every relative link of the repository's Markdown files leads somewhere: its file or folder exists
# and its #anchor, in a Markdown file, is one of that file's headings (as GitHub makes anchors:
# lower case, punctuation dropped, spaces as hyphens, -1, -2 ... for repeats). Links to other sites
# are not followed. Usage: doc_links.sh SOURCE_DIR
set -eu
cd "$1"
anchors=$(mktemp)
trap 'rm -f "$anchors"' EXIT
files=$(find . \( -name 'build*' -o -name .git -o -name _deps -o -path ./bench/out \) -prune -o \
    -name '*.md' -print | sed 's|^\./||' | sort)
[ -n "$files" ] || { echo "no Markdown files under $1"; exit 1; }

# Pass 1: FILE<TAB>ANCHOR for each heading outside fenced code.
# shellcheck disable=SC2086
awk '
    FNR == 1 { fenced = 0; delete seen }
    /^```/ { fenced = !fenced; next }
    fenced || !/^#+ / { next }
    {
        text = $0
        sub(/^#+ +/, "", text)
        sub(/ +#* *$/, "", text)
        text = tolower(text)
        gsub(/[^a-z0-9 _\200-\377-]/, "", text)
        gsub(/ /, "-", text)
        anchor = text
        if (text in seen) anchor = text "-" seen[text]
        seen[text]++
        print FILENAME "\t" anchor
    }
' $files >"$anchors"

# Pass 2: each link [text](target) outside fenced code and code spans.
# shellcheck disable=SC2086
awk -v anchors="$anchors" '
    function normalize(path,    n, i, parts, out, k) {
        n = split(path, parts, "/")
        k = 0
        for (i = 1; i <= n; i++) {
            if (parts[i] == "" || parts[i] == ".") continue
            if (parts[i] == "..") { if (k == 0) return ""; k--; continue }
            out[++k] = parts[i]
        }
        path = ""
        for (i = 1; i <= k; i++) path = path (i > 1 ? "/" : "") out[i]
        return path == "" ? "." : path
    }
    BEGIN {
        while ((getline line < anchors) > 0) {
            split(line, f, "\t")
            known[f[1] "#" f[2]] = 1
        }
        bad = 0
    }
    FNR == 1 { fenced = 0; dir = FILENAME; if (!sub(/\/[^\/]*$/, "", dir)) dir = "." }
    /^```/ { fenced = !fenced; next }
    fenced { next }
    {
        line = $0
        gsub(/`[^`]*`/, "", line)
        while (match(line, /\]\([^) ]*[) ]/)) {
            target = substr(line, RSTART + 2, RLENGTH - 3)
            line = substr(line, RSTART + RLENGTH)
            if (target ~ /^[a-z]+:/) continue
            anchor = ""
            if (index(target, "#")) {
                anchor = substr(target, index(target, "#") + 1)
                target = substr(target, 1, index(target, "#") - 1)
            }
            if (target == "") path = FILENAME
            else if (target ~ /^\//) path = normalize(substr(target, 2))
            else path = normalize(dir "/" target)
            checked++
            where = FILENAME ":" FNR ": (" target (anchor != "" ? "#" anchor : "") ")"
            if (path == "" || system("test -e \"" path "\"") != 0) {
                print where ": no such file or folder"
                bad = 1
            } else if (anchor != "" && path ~ /\.md$/ && !((path "#" anchor) in known)) {
                print where ": no heading of " path " has the anchor #" anchor
                bad = 1
            }
        }
    }
    END { print checked + 0 " relative links checked"; exit bad }
' $files
