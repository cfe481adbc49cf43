#include <sluice/common/error.hpp>
#include <sluice/common/placement_record.hpp>

#include <nlohmann/json.hpp>

namespace sluice {

using nlohmann::json;
using ordered = nlohmann::ordered_json;  // keeps the documented key order in output

std::string NodePlacement::to_json() const {
  ordered tasks_json = ordered::array();
  for (const TaskPlacement& t : tasks) {
    ordered j{{"task", t.task}, {"gpus", t.gpus}, {"nics", t.nics}, {"cpus", t.cpus}, {"numa", t.numa}};
    if (!t.gpu_pci.empty()) j["gpu_pci"] = t.gpu_pci;
    if (!t.bound_cpus.empty()) j["bound_cpus"] = t.bound_cpus;
    tasks_json.push_back(std::move(j));
  }
  ordered doc{{"version", version}, {"policy", policy}, {"topology", topology}, {"cpu_mode", cpu_mode}};
  if (!node.empty()) doc["node"] = node;
  doc["tasks"] = std::move(tasks_json);
  // Node names and paths may hold non-UTF-8 bytes: replace them rather than throw.
  return doc.dump(-1, ' ', false, ordered::error_handler_t::replace);
}

NodePlacement NodePlacement::from_json(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    throw InvalidArgument("placement record is not a JSON object");
  try {
    NodePlacement np;
    np.version = doc.value("version", 1);
    if (np.version != 1)
      throw InvalidArgument("placement record version " + std::to_string(np.version) + " is not supported (this runtime reads 1)");
    np.node = doc.value("node", "");
    np.policy = doc.value("policy", "");
    np.topology = doc.value("topology", "");
    np.cpu_mode = doc.value("cpu_mode", "native");
    for (const json& j : doc.at("tasks")) {
      TaskPlacement t;
      t.task = j.at("task").get<int>();
      t.gpus = j.value("gpus", std::vector<int>{});
      t.gpu_pci = j.value("gpu_pci", std::vector<std::string>{});
      t.nics = j.value("nics", std::vector<std::string>{});
      t.cpus = j.value("cpus", "");
      t.numa = j.value("numa", std::vector<int>{});
      t.bound_cpus = j.value("bound_cpus", "");
      np.tasks.push_back(std::move(t));
    }
    return np;
  } catch (const json::exception& e) {
    throw InvalidArgument(std::string("malformed placement record: ") + e.what());
  }
}

const TaskPlacement* NodePlacement::find_task(int task) const {
  for (const TaskPlacement& t : tasks)
    if (t.task == task) return &t;
  return nullptr;
}

}  // namespace sluice
