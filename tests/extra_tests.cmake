# Script-driven and deploy tests, included from CMakeLists.txt after the GoogleTest loop (so
# the deploy_test target already exists).

# deploy_test reads deploy/ and tests/eco/ from the source tree.
if(TARGET deploy_test)
  target_compile_definitions(deploy_test PRIVATE TOKENTAP_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_link_libraries(deploy_test PRIVATE simdjson::simdjson)
endif()
