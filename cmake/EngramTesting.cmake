# engram_add_test_binary(NAME <binary> LABEL <module> SOURCES ... LIBS ...
#                        [TIMEOUT <seconds>])
#
# Builds one Boost.Test binary per module and registers one ctest entry per
# test suite found in its sources (BOOST_AUTO_TEST_SUITE(name)), each labelled
# with the module folder and given a timeout.
function(engram_add_test_binary)
  cmake_parse_arguments(T "" "NAME;LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS}
                        Boost::unit_test_framework engram_warnings)
  target_compile_definitions(${T_NAME} PRIVATE BOOST_TEST_DYN_LINK)
  set(_suites "")
  foreach(_src IN LISTS T_SOURCES)
    file(STRINGS "${CMAKE_CURRENT_SOURCE_DIR}/${_src}" _lines
         REGEX "^BOOST_AUTO_TEST_SUITE\\(([a-z0-9_]+)")
    foreach(_line IN LISTS _lines)
      string(REGEX REPLACE "^BOOST_AUTO_TEST_SUITE\\(([a-z0-9_]+).*" "\\1"
             _suite "${_line}")
      list(APPEND _suites ${_suite})
    endforeach()
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
                 "${CMAKE_CURRENT_SOURCE_DIR}/${_src}")
  endforeach()
  list(REMOVE_DUPLICATES _suites)
  foreach(_suite IN LISTS _suites)
    add_test(NAME ${T_LABEL}.${_suite}
             COMMAND ${T_NAME} --run_test=${_suite} --log_level=warning)
    set_tests_properties(${T_LABEL}.${_suite} PROPERTIES
                         LABELS ${T_LABEL} TIMEOUT ${T_TIMEOUT})
  endforeach()
endfunction()
