// catalog_merge: the union of model lists a fleet answers as one Ollama.
#include "tokentap/app/catalog_merge.h"

#include <gtest/gtest.h>

namespace tokentap {
namespace {

TEST(CatalogMerge, TagsUnionOneEntryPerNameFirstBackendWins) {
  const std::vector<std::string> bodies = {
      R"({"models":[{"name":"llama3.2:latest","size":1},{"name":"qwen3:8b","size":2}]})",
      R"({"models":[{"name":"qwen3:8b","size":99},{"name":"phi4:latest", "size":3}]})",
      "not json",
      R"({"other":[]})",
  };
  EXPECT_EQ(merge_tags(bodies),
            R"({"models":[{"name":"llama3.2:latest","size":1},{"name":"qwen3:8b","size":2},)"
            R"({"name":"phi4:latest","size":3}]})");
  EXPECT_EQ(merge_tags({}), R"({"models":[]})");
}

TEST(CatalogMerge, OpenAiModelsUnion) {
  const std::vector<std::string> bodies = {
      R"({"object":"list","data":[{"id":"a:latest","object":"model","created":1,"owned_by":"library"}]})",
      R"({"object":"list","data":[{"id":"a:latest","object":"model","created":2,"owned_by":"library"},)"
      R"({"id":"b:latest","object":"model","created":3,"owned_by":"library"}]})",
  };
  EXPECT_EQ(merge_openai_models(bodies),
            "{\"object\":\"list\",\"data\":[{\"id\":\"a:latest\",\"object\":\"model\",\"created\":1,"
            "\"owned_by\":\"library\"},{\"id\":\"b:latest\",\"object\":\"model\",\"created\":3,"
            "\"owned_by\":\"library\"}]}\n");
}

}  // namespace
}  // namespace tokentap
