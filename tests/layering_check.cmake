# layering_check: the build's layering rule, checked on every file of src/ and include/tokentap/.
#
# Run by ctest (`layering`) as `cmake -DSOURCE_DIR=… -DLAYERS=… -P layering_check.cmake`, with
# LAYERS the list CMakeLists.txt builds the layer libraries from ("layer:dep,dep"). It fails when
#  - a file includes "tokentap/<other>/…" of a layer its own layer does not depend on;
#  - a system library is included outside the layers built on it (liburing: loop; llhttp: http;
#    simdjson: meter), so HTTP framing and metering can never come to need a ring; OpenSSL and
#    SQLite are stricter: only their own layer (auth, ledger) includes them, not the layers above,
#    which use the layer's API (the libraries are linked PRIVATE there);
#  - a source file sits in src/ or include/tokentap/ outside any layer folder;
#  - a file under src/ is longer than src_lines_max lines (STYLE §2).
# Each failure names the file and the include, so the fix is obvious.
cmake_minimum_required(VERSION 3.25)

set(src_lines_max 600)
set(failures "")

foreach(entry ${LAYERS})
  string(REPLACE ":" ";" parts "${entry}")
  list(GET parts 0 layer)
  list(APPEND layer_names ${layer})
  set(deps_${layer} "")
  list(LENGTH parts n)
  if(n GREATER 1)
    list(GET parts 1 dep_text)
    string(REPLACE "," ";" deps_${layer} "${dep_text}")
  endif()
endforeach()

# Which layer may include each system library: the one built on it, and every layer above it.
set(owner_liburing loop)
set(owner_llhttp http)
set(owner_simdjson meter)
set(owner_openssl auth)
set(owner_sqlite3 ledger)
# Libraries only their owner may include (no layer above it either).
set(exclusive_libs openssl sqlite3)

function(may_use layer lib out)
  set(owner ${owner_${lib}})
  if(lib IN_LIST exclusive_libs)
    if(layer STREQUAL owner)
      set(${out} TRUE PARENT_SCOPE)
    else()
      set(${out} FALSE PARENT_SCOPE)
    endif()
  elseif(layer STREQUAL owner OR owner IN_LIST deps_${layer})
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

foreach(layer ${layer_names})
  file(GLOB files ${SOURCE_DIR}/src/${layer}/*.cc ${SOURCE_DIR}/src/${layer}/*.h
       ${SOURCE_DIR}/include/tokentap/${layer}/*.h)
  foreach(f ${files})
    file(RELATIVE_PATH rel ${SOURCE_DIR} ${f})
    file(STRINGS ${f} includes REGEX "^#include [<\"]")
    foreach(line ${includes})
      if(line MATCHES "^#include \"tokentap/([a-z_]+)/")
        set(used ${CMAKE_MATCH_1})
        if(NOT used IN_LIST layer_names)
          list(APPEND failures "${rel}: ${line} names no layer")
        elseif(NOT used STREQUAL layer AND NOT used IN_LIST deps_${layer})
          list(APPEND failures "${rel}: ${line} (layer ${layer} does not depend on ${used})")
        endif()
      elseif(line MATCHES "^#include \"tokentap/")
        list(APPEND failures "${rel}: ${line} is outside every layer folder")
      endif()
      foreach(lib liburing llhttp simdjson openssl sqlite3)
        if(line MATCHES "^#include [<\"]${lib}[./]")
          may_use(${layer} ${lib} ok)
          if(NOT ok AND lib IN_LIST exclusive_libs)
            list(APPEND failures "${rel}: ${line} (only ${owner_${lib}} uses ${lib})")
          elseif(NOT ok)
            list(APPEND failures "${rel}: ${line} (only ${owner_${lib}} and above use ${lib})")
          endif()
        endif()
      endforeach()
    endforeach()
    if(rel MATCHES "^src/")
      file(READ ${f} text)
      string(REGEX MATCHALL "\n" newlines "${text}")  # file(STRINGS) would skip blank lines
      list(LENGTH newlines count)
      if(count GREATER src_lines_max)
        list(APPEND failures "${rel}: ${count} lines (at most ${src_lines_max} per file)")
      endif()
    endif()
  endforeach()
endforeach()

file(GLOB stray ${SOURCE_DIR}/src/*.cc ${SOURCE_DIR}/src/*.h ${SOURCE_DIR}/include/tokentap/*.h)
foreach(f ${stray})
  file(RELATIVE_PATH rel ${SOURCE_DIR} ${f})
  list(APPEND failures "${rel}: outside every layer folder")
endforeach()

if(failures)
  list(JOIN failures "\n  " text)
  message(FATAL_ERROR "layering: ${text}")
endif()
list(LENGTH layer_names n)
message(STATUS "layering: ${n} layers, every include within its layer's dependencies")
