#!/bin/sh
# Doxygen INPUT_FILTER: the headers document their API in plain // comments (they read better
# in an editor); Doxygen only takes ///. Turns a whole-line // comment into ///, and a trailing
# "...; // note" into "///<" (a member's note). The headers themselves are not changed.
exec sed -E \
  -e 's#^([[:space:]]*)//([^/!]|$)#\1///\2#' \
  -e 's#([;,{])([[:space:]]+)//([^/!<])#\1\2///<\3#' "$1"
