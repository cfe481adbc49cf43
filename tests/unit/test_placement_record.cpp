// The SLUICE_PLACEMENT record: JSON layout, round trip, malformed input, find_task.
#define BOOST_TEST_MODULE placement_record
#include <boost/test/unit_test.hpp>

#include <sluice/common/error.hpp>
#include <sluice/common/placement_record.hpp>

#include <nlohmann/json.hpp>

#include <string>

using sluice::NodePlacement;
using sluice::TaskPlacement;

namespace {

NodePlacement sample() {
  NodePlacement np;
  np.node = "lassen7";
  np.policy = "pack";
  np.topology = "/etc/sluice/coral-lassen.xml";
  np.cpu_mode = "emulated";
  np.tasks.push_back({.task = 0, .gpus = {0, 1}, .nics = {"mlx5_0"}, .cpus = "0-19", .numa = {0},
                      .bound_cpus = "0", .gpu_pci = {"0004:04:00.0", "0004:05:00.0"}});
  np.tasks.push_back({.task = 1, .gpus = {2, 3}, .nics = {"mlx5_2", "mlx5_3"}, .cpus = "96-135,140", .numa = {8},
                      .bound_cpus = "", .gpu_pci = {}});
  np.tasks.push_back({.task = 2, .gpus = {}, .nics = {}, .cpus = "", .numa = {}, .bound_cpus = "", .gpu_pci = {}});
  return np;
}

void expect_invalid(const std::string& text, const std::string& fragment) {
  BOOST_TEST_CONTEXT("input " << text) {
    try {
      (void)NodePlacement::from_json(text);
      BOOST_ERROR("no exception");
    } catch (const sluice::InvalidArgument& e) {
      std::string msg = e.what();
      BOOST_TEST_CONTEXT("message " << msg) {
        BOOST_TEST(msg.find("placement record") != std::string::npos);  // says what is malformed
        BOOST_TEST(msg.find(fragment) != std::string::npos);
      }
    } catch (const std::exception& e) {
      BOOST_ERROR("wrong exception type: " << e.what());
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip) {
  NodePlacement a = sample();
  NodePlacement b = NodePlacement::from_json(a.to_json());
  BOOST_TEST(b.version == 1);
  BOOST_TEST(b.node == a.node);
  BOOST_TEST(b.policy == a.policy);
  BOOST_TEST(b.topology == a.topology);
  BOOST_TEST(b.cpu_mode == a.cpu_mode);
  BOOST_TEST_REQUIRE(b.tasks.size() == a.tasks.size());
  for (std::size_t j = 0; j < a.tasks.size(); ++j) {
    BOOST_TEST_CONTEXT("task " << j) {
      BOOST_TEST(b.tasks[j].task == a.tasks[j].task);
      BOOST_TEST(b.tasks[j].gpus == a.tasks[j].gpus, boost::test_tools::per_element());
      BOOST_TEST(b.tasks[j].nics == a.tasks[j].nics, boost::test_tools::per_element());
      BOOST_TEST(b.tasks[j].cpus == a.tasks[j].cpus);
      BOOST_TEST(b.tasks[j].numa == a.tasks[j].numa, boost::test_tools::per_element());
      BOOST_TEST(b.tasks[j].bound_cpus == a.tasks[j].bound_cpus);
      BOOST_TEST(b.tasks[j].gpu_pci == a.tasks[j].gpu_pci, boost::test_tools::per_element());
    }
  }
  // And again: the text is stable.
  BOOST_TEST(b.to_json() == a.to_json());
}

BOOST_AUTO_TEST_CASE(documented_key_layout) {
  // {"tasks":[{"task":0,"gpus":[0,1],"nics":["mlx5_0"],"cpus":"0-19","numa":[0]},...], ...}
  nlohmann::json doc = nlohmann::json::parse(sample().to_json());
  BOOST_TEST_REQUIRE(doc.is_object());
  BOOST_TEST(doc.at("version") == 1);
  BOOST_TEST(doc.at("policy") == "pack");
  BOOST_TEST(doc.at("topology") == "/etc/sluice/coral-lassen.xml");
  BOOST_TEST(doc.at("cpu_mode") == "emulated");
  BOOST_TEST(doc.at("node") == "lassen7");
  BOOST_TEST_REQUIRE(doc.at("tasks").is_array());
  BOOST_TEST_REQUIRE(doc["tasks"].size() == 3u);
  const nlohmann::json& t0 = doc["tasks"][0];
  BOOST_TEST(t0.at("task").is_number_integer());
  BOOST_TEST(t0.at("task") == 0);
  BOOST_TEST(t0.at("gpus").is_array());
  BOOST_TEST(t0.at("gpus") == nlohmann::json::parse("[0,1]"));
  BOOST_TEST(t0.at("nics") == nlohmann::json::parse(R"(["mlx5_0"])"));
  BOOST_TEST(t0.at("cpus").is_string());
  BOOST_TEST(t0.at("cpus") == "0-19");
  BOOST_TEST(t0.at("numa") == nlohmann::json::parse("[0]"));
  BOOST_TEST(t0.at("bound_cpus") == "0");
  BOOST_TEST(t0.at("gpu_pci") == nlohmann::json::parse(R"(["0004:04:00.0","0004:05:00.0"])"));
  const nlohmann::json& t1 = doc["tasks"][1];
  BOOST_TEST(t1.at("nics") == nlohmann::json::parse(R"(["mlx5_2","mlx5_3"])"));
  BOOST_TEST(t1.at("cpus") == "96-135,140");
  // Empty lists stay lists (a reader can iterate them without checking).
  const nlohmann::json& t2 = doc["tasks"][2];
  BOOST_TEST(t2.at("gpus").is_array());
  BOOST_TEST(t2.at("gpus").empty());
  BOOST_TEST(t2.at("nics").is_array());
  BOOST_TEST(t2.at("numa").is_array());
  BOOST_TEST(t2.at("cpus") == "");
}

BOOST_AUTO_TEST_CASE(minimal_record_from_documented_example) {
  // The documented form, without the optional keys.
  NodePlacement np = NodePlacement::from_json(
      R"({"tasks":[{"task":0,"gpus":[0,1],"nics":["mlx5_0"],"cpus":"0-19","numa":[0]},)"
      R"({"task":1,"gpus":[2,3],"nics":["mlx5_2"],"cpus":"96-115","numa":[8]}]})");
  BOOST_TEST(np.version == 1);
  BOOST_TEST_REQUIRE(np.tasks.size() == 2u);
  BOOST_TEST(np.tasks[1].task == 1);
  BOOST_TEST(np.tasks[1].gpus == (std::vector<int>{2, 3}), boost::test_tools::per_element());
  BOOST_TEST(np.tasks[1].nics == std::vector<std::string>{"mlx5_2"}, boost::test_tools::per_element());
  BOOST_TEST(np.tasks[1].cpus == "96-115");
  BOOST_TEST(np.tasks[1].numa == std::vector<int>{8}, boost::test_tools::per_element());
  BOOST_TEST(np.tasks[1].bound_cpus.empty());
}

BOOST_AUTO_TEST_CASE(malformed_records) {
  expect_invalid("", "");
  expect_invalid("not json", "");
  expect_invalid(R"({"tasks":[)", "");
  expect_invalid("[1,2,3]", "");                               // not an object
  expect_invalid(R"("tasks")", "");                            // a string
  expect_invalid(R"({})", "tasks");                            // tasks missing
  expect_invalid(R"({"policy":"pack"})", "tasks");             // tasks missing
  expect_invalid(R"({"tasks":"0-3"})", "");                    // tasks not an array
  expect_invalid(R"({"tasks":[{"gpus":[0]}]})", "task");       // task id missing
  expect_invalid(R"({"tasks":[{"task":"0"}]})", "");           // task id a string
  expect_invalid(R"({"tasks":[{"task":0,"gpus":"0,1"}]})", "");  // gpus not a list
  expect_invalid(R"({"tasks":[{"task":0,"gpus":["a"]}]})", "");  // gpus of strings
  expect_invalid(R"({"tasks":[{"task":0,"nics":[1]}]})", "");    // nics of numbers
  expect_invalid(R"({"tasks":[{"task":0,"cpus":[0,1]}]})", "");  // cpus not a string
  expect_invalid(R"({"tasks":[{"task":0,"numa":0}]})", "");      // numa not a list
  expect_invalid(R"({"tasks":[7]})", "");                        // task not an object
  expect_invalid(R"({"version":"1","tasks":[]})", "");           // version not a number
  expect_invalid(R"({"version":2,"tasks":[]})", "version 2");    // a newer writer
}

BOOST_AUTO_TEST_CASE(find_task) {
  NodePlacement np = sample();
  const TaskPlacement* t1 = np.find_task(1);
  BOOST_TEST_REQUIRE(t1 != nullptr);
  BOOST_TEST(t1->task == 1);
  BOOST_TEST(t1->cpus == "96-135,140");
  BOOST_TEST(np.find_task(3) == nullptr);
  BOOST_TEST(np.find_task(-1) == nullptr);
  // By id, not by position.
  NodePlacement sparse = NodePlacement::from_json(R"({"tasks":[{"task":5,"cpus":"4"},{"task":2,"cpus":"1"}]})");
  const TaskPlacement* t2 = sparse.find_task(2);
  BOOST_TEST_REQUIRE(t2 != nullptr);
  BOOST_TEST(t2->cpus == "1");
  BOOST_TEST(sparse.find_task(0) == nullptr);
  BOOST_TEST(sparse.find_task(1) == nullptr);
}
