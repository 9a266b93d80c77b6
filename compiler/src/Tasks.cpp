// Records (`{ name = value, ... }` and `record.field`), task records given to the folder
// data sets (`fomo25(root, task = infarct_task)`), and the metrics that score an
// evaluation.
#include "CheckInternal.h"

namespace gyrus {
namespace check {

std::string metricName(const Value& v) {
  if (v.ty == Ty::Metric) return v.str;
  // `mae` is the MAE objective's function; in a list of metrics it is the metric.
  if (v.ty == Ty::Function && v.function == "mae") return "mae";
  return std::string();
}

const std::vector<std::string>& metricsOf(ir::LabelKind kind) {
  static const std::vector<std::string> binary = {"auroc"};
  static const std::vector<std::string> continuous = {"mae", "pearson_r"};
  static const std::vector<std::string> mask = {"dice", "nsd"};
  return kind == ir::LabelKind::Binary ? binary : kind == ir::LabelKind::Continuous ? continuous : mask;
}

std::string labelKindWord(ir::LabelKind kind) {
  return kind == ir::LabelKind::Binary ? "binary" : kind == ir::LabelKind::Continuous ? "regression" : "segmentation";
}

namespace {

const std::vector<std::string> kAllMetrics = {"auroc", "dice", "nsd", "mae", "pearson_r"};

std::string joinWords(const std::vector<std::string>& words, const char* sep = ", ") {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : sep) + w;
  return out;
}

// The data-set functions a task record can be given to (`layout = "..."` names one).
const std::vector<std::string> kLayouts = {"fomo25", "fomo60k", "folder"};

}  // namespace

Value Checker::evalRecord(const ast::ExprRecord& r) {
  Value v;
  v.ty = Ty::Record;
  v.literal = r.range;
  bool ok = true;
  for (const ast::RecordField& f : r.fields) {
    Value fv = eval(*f.value);
    int seen = fieldIndex(v, f.name);
    if (seen >= 0) {
      diags_.report(DiagKind::DuplicateArgument, f.nameRange, "field '" + f.name + "' is given twice in this record")
          .note(v.fieldNameRanges[static_cast<size_t>(seen)], "first given here");
      ok = false;
      continue;
    }
    if (fv.ty == Ty::Error) ok = false;
    v.fieldNames.push_back(f.name);
    v.fieldNameRanges.push_back(f.nameRange);
    v.items.push_back(std::move(fv));
  }
  return ok ? v : errorValue();
}

Value Checker::evalMember(const ast::ExprMember& m) {
  Value base = eval(*m.base);
  if (base.ty == Ty::Error) return errorValue();
  if (base.ty != Ty::Record) {
    Diagnostic& d = diags_.report(DiagKind::UnknownField, m.nameRange,
                                  std::string(tyName(base.ty)) + " has no member '" + m.name + "'");
    if (base.ty == Ty::Dataset)
      d.note("a data set's labels are used by evaluations: `evaluate MODEL on " + std::string(sm_.text(m.range)) + "`");
    return errorValue();
  }
  int i = fieldIndex(base, m.name);
  if (i >= 0) return base.items[static_cast<size_t>(i)];
  Diagnostic& d = diags_.report(DiagKind::UnknownField, m.nameRange, "the record has no field '" + m.name + "'");
  suggest(d, m.nameRange, m.name, base.fieldNames);
  d.note(base.literal, base.fieldNames.empty() ? std::string("the record, which has no fields, is written here")
                                                : "its fields: " + joinWords(base.fieldNames));
  return errorValue();
}

void Checker::noteTaskUse(size_t from, SourceRange use) {
  for (size_t i = from; i < diags_.all().size(); ++i) {
    Diagnostic& d = diags_.at(i);
    bool inside = d.range.file == use.file && d.range.begin >= use.begin && d.range.end <= use.end;
    if (!inside) d.note(use, "task given here");
  }
}

bool Checker::readMetrics(const Value& list, SourceRange at, const std::string& what, std::vector<std::string>& names,
                          std::vector<SourceRange>& ranges) {
  if (list.ty == Ty::Error) return false;
  if (list.ty != Ty::List) {
    Diagnostic& d = diags_.report(DiagKind::TypeMismatch, at,
                                  what + " must be a list of metrics, not " + std::string(tyName(list.ty)) + " ('" +
                                      std::string(sm_.text(at)) + "')");
    if (!metricName(list).empty()) d.fixit(at, "[" + std::string(sm_.text(at)) + "]");
    return false;
  }
  if (list.items.empty()) {
    diags_.report(DiagKind::ValueRange, at, what + " must name at least one metric")
        .note("the metrics are " + joinWords(kAllMetrics));
    return false;
  }
  bool ok = true;
  for (const Value& item : list.items) {
    std::string name = metricName(item);
    SourceRange where = item.range.end > item.range.begin ? item.range : at;
    if (name.empty()) {
      Diagnostic& d = diags_.report(DiagKind::TypeMismatch, where,
                                    "'" + std::string(sm_.text(where)) + "' is " + std::string(tyName(item.ty)) +
                                        ", not a metric");
      if (item.ty == Ty::String && std::find(kAllMetrics.begin(), kAllMetrics.end(), item.str) != kAllMetrics.end()) {
        d.fixit(where, item.str);
      }
      d.note("the metrics are " + joinWords(kAllMetrics) + " (names, not strings)");
      ok = false;
      continue;
    }
    auto seen = std::find(names.begin(), names.end(), name);
    if (seen != names.end()) {
      diags_.report(DiagKind::DuplicateArgument, where, "metric '" + name + "' is listed twice")
          .note(ranges[static_cast<size_t>(seen - names.begin())], "first listed here");
      ok = false;
      continue;
    }
    names.push_back(name);
    ranges.push_back(where);
  }
  return ok;
}

bool Checker::checkMetricsSuit(const std::vector<std::string>& names, const std::vector<SourceRange>& ranges,
                               SourceRange listAt, ir::LabelKind kind, const std::string& label, SourceRange labelAt) {
  const std::vector<std::string>& valid = metricsOf(kind);
  std::vector<std::string> kept, bad;
  size_t firstBad = names.size();
  for (size_t i = 0; i < names.size(); ++i) {
    if (std::find(valid.begin(), valid.end(), names[i]) != valid.end()) {
      kept.push_back(names[i]);
    } else {
      bad.push_back("'" + names[i] + "'");
      firstBad = std::min(firstBad, i);
    }
  }
  if (bad.empty()) return true;
  // One report for the list: the fix keeps the metrics that fit, or offers the label's.
  Diagnostic& d = diags_.report(DiagKind::MetricMismatch, ranges[firstBad],
                                (bad.size() == 1 ? "metric " : "metrics ") + joinWords(bad, " and ") + " cannot score " +
                                    label + ", a " + labelKindWord(kind) + " label");
  for (size_t i = firstBad + 1; i < names.size(); ++i)
    if (std::find(valid.begin(), valid.end(), names[i]) == valid.end()) d.note(ranges[i], "'" + names[i] + "' here");
  if (labelAt.end > labelAt.begin) d.note(labelAt, "the label is set here");
  d.note(labelKindWord(kind) + " labels are scored by " + joinWords(valid, " and "));
  // The standard library is not the user's to edit: no fix-it there.
  if (listAt.end > listAt.begin && sm_.file(listAt.file).path.rfind("<std>", 0) != 0) d.fixit(listAt, "[" + joinWords(kept.empty() ? valid : kept) + "]");
  return false;
}

bool Checker::applyTask(const Builtin& fn, const ast::ExprCall& call, std::map<std::string, Bound>& bound,
                        TaskUse& use) {
  auto it = bound.find("task");
  if (it == bound.end() || !it->second.present || it->second.value.ty != Ty::Record) return true;
  const Value task = it->second.value;
  use.given = true;
  use.at = it->second.range;
  size_t firstDiag = diags_.all().size();
  std::string taskText(sm_.text(use.at));
  std::string taskName = taskText.size() <= 32 && taskText.find_first_of("{\n") == std::string::npos
                             ? "task '" + taskText + "'"
                             : std::string("this task");

  // The layout first: a task for another layout explains every other difference.
  int layout = fieldIndex(task, "layout");
  if (layout >= 0) {
    const Value& lv = task.items[static_cast<size_t>(layout)];
    if (lv.ty != Ty::String) {
      typeMismatch(lv, Ty::String, lv.range, "field 'layout' of a task");
      noteTaskUse(firstDiag, use.at);
      return false;
    }
    if (std::find(kLayouts.begin(), kLayouts.end(), lv.str) == kLayouts.end()) {
      Diagnostic& d = diags_.report(DiagKind::ValueRange, lv.range, "unknown layout \"" + lv.str + "\"");
      suggest(d, lv.range, lv.str, kLayouts, SuggestStyle{true, '"', "\"", "\""});
      d.note("a task's layout names the function that reads its folders: " + joinWords(kLayouts));
      noteTaskUse(firstDiag, use.at);
      return false;
    }
    if (lv.str != fn.name) {
      diags_.report(DiagKind::TypeMismatch, use.at,
                    taskName + " is for " + lv.str + "() folders, but it is given to " + fn.name + "()")
          .note(lv.range, "its layout is declared here")
          .fixit(call.callee->range, lv.str);
      return false;
    }
  }

  // The other fields are the call's own arguments (explicit ones win) or its metrics.
  std::vector<std::string> settable;
  for (const Param& p : fn.params)
    if (p.name != "root" && p.name != "task") settable.push_back(p.name);
  bool ok = true;
  for (size_t i = 0; i < task.fieldNames.size(); ++i) {
    const std::string& name = task.fieldNames[i];
    const Value& fv = task.items[i];
    if (name == "layout") continue;
    if (name == "metrics") {
      std::vector<std::string> names;
      std::vector<SourceRange> ranges;
      if (!readMetrics(fv, fv.range, "field 'metrics' of a task", names, ranges)) {
        ok = false;
        continue;
      }
      use.metrics = fv.items;
      use.metricsAt = fv.range;
      continue;
    }
    const Param* p = nullptr;
    for (const Param& q : fn.params)
      if (q.name == name && q.name != "root" && q.name != "task") p = &q;
    if (p == nullptr) {
      std::vector<std::string> fields = settable;
      fields.push_back("metrics");
      fields.push_back("layout");
      Diagnostic& d = diags_.report(DiagKind::UnknownField, task.fieldNameRanges[i],
                                    "a task given to " + fn.name + "() has no field '" + name + "'");
      suggest(d, task.fieldNameRanges[i], name, fields);
      d.note("a task given to " + fn.name + "() may set: " + joinWords(fields));
      ok = false;
      continue;
    }
    if (bound.count(name) != 0 && bound[name].present) continue;  // the call's own argument wins
    Value v = fv;
    std::string what = "field '" + name + "' of a task (argument '" + name + "' of " + fn.name + "())";
    if (!coerce(v, p->ty, fv.range, what)) {
      ok = false;
      continue;
    }
    {
      std::string why = checkBounds(*p, v);
      if (!why.empty()) {
        diags_.report(DiagKind::ValueRange, fv.range, what + " " + why + "; got " + std::string(sm_.text(fv.range)));
        ok = false;
        continue;
      }
    }
    bound[name] = {true, v, fv.range};
  }

  // The task's metrics must suit the label the call ends up with.
  if (ok && use.metricsAt.end > use.metricsAt.begin) {
    ir::LabelKind kind = ir::LabelKind::Binary;
    SourceRange labelAt;
    auto label = bound.find("label");
    if (label != bound.end() && label->second.present && label->second.value.ty == Ty::LabelType) {
      kind = label->second.value.num == 0 ? ir::LabelKind::Binary
             : label->second.value.num == 1 ? ir::LabelKind::Continuous
                                            : ir::LabelKind::Mask;
      // A label the call sets itself is worth showing; one from the task is in view.
      bool inCall = label->second.range.file == call.range.file && label->second.range.begin >= call.range.begin &&
                    label->second.range.end <= call.range.end && !(label->second.range.begin >= use.at.begin &&
                                                                   label->second.range.end <= use.at.end);
      if (inCall) labelAt = label->second.range;
    }
    std::vector<std::string> names;
    std::vector<SourceRange> ranges;
    for (const Value& m : use.metrics) {
      names.push_back(metricName(m));
      ranges.push_back(m.range);
    }
    if (!checkMetricsSuit(names, ranges, use.metricsAt, kind, "the label of " + taskName, labelAt)) ok = false;
  }
  noteTaskUse(firstDiag, use.at);
  return ok;
}

void Checker::finishTask(const TaskUse& use, size_t firstDiag, SourceRange call, Value& result) {
  if (!use.given) return;
  // What the function reported about a value that came from the task points into the
  // record: show the use as well.
  for (size_t i = firstDiag; i < diags_.all().size(); ++i) {
    Diagnostic& d = diags_.at(i);
    bool inCall = d.range.file == call.file && d.range.begin >= call.begin && d.range.end <= call.end;
    if (!inCall) d.note(use.at, "task given here");
  }
  if (result.ty != Ty::Dataset) return;
  result.taskMetrics = use.metrics;
  result.taskMetricsOrigin = use.metricsAt;
  result.taskOrigin = use.at;
}

}  // namespace check
}  // namespace gyrus
