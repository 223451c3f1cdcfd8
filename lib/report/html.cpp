// HTML report with inline SVG charts.
#include "report/html.h"
#include "report/metrics.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace qatc::report {
namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};

}  // namespace

std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series) {
  const double W = 480, H = 260, L = 56, R = 12, T = 28, B = 40;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  std::string o = fmt::format(R"(<svg width="{}" height="{}" role="img">)", W, H);
  o += fmt::format(R"(<text x="{}" y="18" font-size="14" text-anchor="middle">{}</text>)", W / 2, escape(title));
  if (x0 > x1) return o + R"(<text x="20" y="60">no data</text></svg>)";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1e-6 + std::fabs(y0) * 0.01;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return T + (1 - (y - y0) / (y1 - y0)) * (H - T - B); };
  o += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>)", L, T, W - L - R,
                   H - T - B);
  for (int k = 0; k <= 4; ++k) {
    const double y = y0 + (y1 - y0) * k / 4.0;
    o += fmt::format(R"(<text x="{}" y="{:.1f}" font-size="10" text-anchor="end">{:.4g}</text>)", L - 4, py(y) + 3, y);
    const double x = x0 + (x1 - x0) * k / 4.0;
    o += fmt::format(R"(<text x="{:.1f}" y="{}" font-size="10" text-anchor="middle">{:.4g}</text>)", px(x), H - B + 14, x);
  }
  o += fmt::format(R"(<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>)", (L + W - R) / 2, H - 6,
                   escape(x_label));
  for (size_t i = 0; i < series.size(); ++i) {
    std::string pts;
    for (auto [x, y] : series[i].points) pts += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    const char* color = kColors[i % 4];
    o += fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>)", color, pts);
    if (series[i].points.size() == 1)
      o += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)", px(series[i].points[0].first),
                       py(series[i].points[0].second), color);
    o += fmt::format(R"(<text x="{}" y="{}" font-size="11" fill="{}">{}</text>)", L + 8, T + 14 + 13 * i, color,
                     escape(series[i].name));
  }
  return o + "</svg>";
}

std::pair<Series, Series> stage_curves(const std::vector<nlohmann::json>& metrics, const std::string& stage) {
  Series loss{stage + " loss", {}}, acc{stage + " accuracy", {}};
  for (const auto& m : metrics) {
    if (m.value("stage", "") != stage || !m.contains("curve")) continue;
    for (const auto& p : m["curve"]) {
      loss.points.emplace_back(p[0].get<double>(), p[1].get<double>());
      acc.points.emplace_back(p[0].get<double>(), p[2].get<double>());
    }
  }
  return {loss, acc};
}

std::string render_html(const nlohmann::json& rep, const std::vector<nlohmann::json>& metrics) {
  std::string o = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>qatc report: " +
                  escape(rep.value("recipe", "")) + "</title><style>"
                  "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
                  "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}"
                  "td:first-child,th:first-child{text-align:left}svg{margin:0.5em 1em 0.5em 0}"
                  "</style></head><body>";
  o += "<h1>qatc report: " + escape(rep.value("recipe", "")) + "</h1>";
  const auto& ds = rep["dataset"];
  o += fmt::format("<p>Dataset: {} ({} images)</p>", escape(ds.value("split", "")), ds.value("examples", 0));
  double float_acc = -1;
  for (const auto& r : rep["results"])
    if (r.value("model", "") == "float") float_acc = number(r, "accuracy");
  o += "<h2>Accuracy, size and latency</h2><table><tr><th>model</th><th>accuracy</th><th>vs float (points)</th>"
       "<th>size (bytes)</th><th>latency batch 1 (ms)</th><th>same top-1 as fake-quant</th></tr>";
  for (const auto& r : rep["results"]) {
    const double acc = number(r, "accuracy");
    std::string agree = "-";
    if (r.contains("agreement_with_fakequant"))
      agree = fmt::format("{:.3f}%", 100 * r["agreement_with_fakequant"].value("top1", 0.0));
    o += fmt::format("<tr><td>{}</td><td>{:.2f}%</td><td>{}</td><td>{}</td><td>{:.3f}</td><td>{}</td></tr>",
                     escape(r.value("model", "")), 100 * acc,
                     float_acc >= 0 ? fmt::format("{:+.2f}", 100 * (acc - float_acc)) : "-", r.value("size_bytes", 0),
                     number(r, "latency_ms_batch1"), agree);
  }
  o += "</table>";
  for (const auto& r : rep["results"]) {
    if (!r.contains("layers")) continue;
    o += "<h2>Per layer: " + escape(r.value("model", "")) + "</h2><table><tr><th>layer</th><th>weight bits</th>"
         "<th>weight SQNR (dB)</th><th>activation bits</th><th>activation SQNR (dB)</th><th>clipped</th></tr>";
    for (const auto& l : r["layers"])
      o += fmt::format("<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}</td><td>{:.4f}%</td></tr>",
                       escape(l.value("layer", "")), l.value("skipped", false) ? " (float)" : "",
                       l.contains("weight_bits") ? std::to_string(l.value("weight_bits", 0)) : "-",
                       l.contains("weight_sqnr_db") ? fmt::format("{:.1f}", number(l, "weight_sqnr_db")) : "-",
                       l.value("activation_bits", 0), number(l, "activation_sqnr_db"),
                       100 * number(l, "activation_clipped"));
    o += "</table>";
  }
  o += "<h2>Training curves</h2><div>";
  for (const char* stage : {"train", "qat"}) {
    auto [loss, acc] = stage_curves(metrics, stage);
    if (loss.points.empty()) continue;
    o += svg_chart(std::string(stage) + ": loss", "step", {loss});
    o += svg_chart(std::string(stage) + ": accuracy", "step", {acc});
  }
  o += "</div></body></html>\n";
  return o;
}

}  // namespace qatc::report
