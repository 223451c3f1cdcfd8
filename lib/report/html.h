// The self-contained HTML report: tables and inline SVG line charts, no external URLs.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qatc::report {

// A line chart of (x, y) series as an inline <svg> element.
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};
std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series);

// report: the report.json document; metrics: the lines of metrics.jsonl.
std::string render_html(const nlohmann::json& report, const std::vector<nlohmann::json>& metrics);

// Curves of one stage ("train", "qat") from metrics.jsonl: loss and accuracy per step.
std::pair<Series, Series> stage_curves(const std::vector<nlohmann::json>& metrics, const std::string& stage);

}  // namespace qatc::report
