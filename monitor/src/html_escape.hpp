// HTML escaping for the self-contained report pages (report_job.cpp, report_cluster.cpp):
// every string that comes from a file (user, account, job id, paths, reasons) goes through it.
#pragma once

#include <string>
#include <string_view>

namespace sluice::monitor::report {

inline std::string html_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  return o;
}

}  // namespace sluice::monitor::report
