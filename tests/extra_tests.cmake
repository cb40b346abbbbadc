# Script-driven and deploy tests, included from CMakeLists.txt after the GoogleTest loop (so
# the deploy_test target already exists).

# deploy_test reads deploy/ and tests/eco/ from the source tree.
if(TARGET deploy_test)
  target_compile_definitions(deploy_test PRIVATE TOKENTAP_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_link_libraries(deploy_test PRIVATE simdjson::simdjson)
endif()

# A real Prometheus server scraping tokentap in front of the fake upstream. Exit 77 = skipped
# (no prometheus binary).
if(TARGET tokentap AND TARGET fake_upstream)
  add_test(NAME eco.prometheus_scrape
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/eco/prometheus_test.sh
                   $<TARGET_FILE:tokentap> $<TARGET_FILE:fake_upstream>)
  set_tests_properties(eco.prometheus_scrape PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 240)
endif()

# The official Ollama, OpenAI and Anthropic JS SDKs, directly and through tokentap. The pinned
# SDKs are installed with `npm ci` into the build tree once. Exit 77 = skipped (no node/npm,
# or the npm registry is unreachable).
if(TARGET tokentap AND TARGET fake_upstream)
  add_test(NAME eco.sdk_clients
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/eco/sdk_test.sh
                   $<TARGET_FILE:tokentap> $<TARGET_FILE:fake_upstream>
                   ${CMAKE_BINARY_DIR}/eco-sdk)
  set_tests_properties(eco.sdk_clients PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()

# STYLE.md §14 shape limits: functions in src/ <= 70 lines, lines in src/ and include/ <= 100
# columns. Pure python, no build needed.
add_test(NAME shape COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/shape_check.py ${CMAKE_SOURCE_DIR})
