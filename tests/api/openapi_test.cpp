// The OpenAPI document (docs/openapi.json) and the routes engramd serves
// agree: the same methods on the same paths, each the same operation (what
// access control checks).

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <tuple>

#include "gateway/gateway.hpp"

using namespace engram;

BOOST_AUTO_TEST_SUITE(openapi)

BOOST_AUTO_TEST_CASE(the_document_lists_exactly_the_served_routes) {
  std::ifstream in{ENGRAM_OPENAPI_PATH};
  BOOST_REQUIRE(in);
  auto doc = nlohmann::json::parse(in);
  BOOST_CHECK_EQUAL(doc["openapi"].get<std::string>().substr(0, 2), "3.");
  using entry = std::tuple<std::string, std::string, std::string>;
  std::set<entry> documented;
  for (auto& [path, ops] : doc["paths"].items())
    for (auto& [method, op] : ops.items()) {
      std::string m = method;
      for (auto& ch : m)
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      documented.emplace(m, path, op["x-engram-operation"].get<std::string>());
      BOOST_CHECK_MESSAGE(op.contains("responses"), path << " " << method);
    }
  std::set<entry> served;
  for (auto& r : gateway::routes())
    served.emplace(r.method, r.pattern, api::to_string(r.op));
  for (auto& e : served)
    BOOST_CHECK_MESSAGE(documented.count(e),
                        "served, not documented: " << std::get<0>(e) << " "
                                                   << std::get<1>(e) << " ("
                                                   << std::get<2>(e) << ")");
  for (auto& e : documented)
    BOOST_CHECK_MESSAGE(served.count(e),
                        "documented, not served: " << std::get<0>(e) << " "
                                                   << std::get<1>(e) << " ("
                                                   << std::get<2>(e) << ")");
}

BOOST_AUTO_TEST_SUITE_END()
