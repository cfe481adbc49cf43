#!/bin/sh
# Renders one of sluice-report's HTML pages with headless Chromium: the DOM it built must hold
# the SVG charts and the title, the page must log nothing to the console (it has no scripts: any
# console line is an error), and a screenshot is taken beside the page (PAGE.png, for a human to
# look at). Exit 77 (ctest: skipped) when Chromium is not installed.
# Usage: render_report_html.sh PAGE.html [TITLE [MIN_SVGS]]
#   defaults: the `sluice-report job 109` page of monitor.report_job, at least 4 <svg> elements.
set -eu
html=$1
title=${2:-sluice-report job 109}
min_svgs=${3:-4}
shot=${html%.html}.png
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "chromium not installed: skipping the rendering test (site/install-deps.sh installs it)"
  exit 77
fi
[ -s "$html" ] || { echo "no page at $html (monitor.report_job writes it)"; exit 1; }
flags="--headless --no-sandbox --disable-gpu --no-first-run --window-size=1000,1400"
dom=$(timeout 90 "$browser" $flags --dump-dom "file://$html" 2>/dev/null)
svgs=$(printf '%s' "$dom" | grep -o '<svg' | wc -l)
echo "rendered DOM: $svgs <svg> elements"
[ "$svgs" -ge "$min_svgs" ] || { echo "expected at least $min_svgs <svg> elements"; exit 1; }
printf '%s' "$dom" | grep -q "$title" || { echo "title '$title' missing from the DOM"; exit 1; }

rm -f "$shot"
log=$(timeout 90 "$browser" $flags --enable-logging=stderr --v=0 --screenshot="$shot" "file://$html" 2>&1 >/dev/null || true)
console=$(printf '%s\n' "$log" | grep ':CONSOLE' || true)
if [ -n "$console" ]; then
  echo "the page logged to the console:"
  printf '%s\n' "$console"
  exit 1
fi
size=$(stat -c %s "$shot" 2>/dev/null || echo 0)
echo "screenshot: $shot ($size bytes), no console messages"
# A blank 1000x1400 PNG is a few kB; a rendered report is well over 20 kB.
[ "$size" -gt 20000 ] || { echo "the screenshot is missing or blank"; exit 1; }
