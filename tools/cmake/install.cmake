# What `cmake --install BUILD --prefix P` puts under P (CMakeLists.txt includes this file when
# EMBER_INSTALL is ON), by component, and the .deb packages `cpack -G DEB` makes of them:
#   runtime (libember0)     lib/libember.so.0 -> libember.so.0.2.0
#   dev     (libember-dev)  include/ember.h, lib/libember.so, lib/libember.a,
#                           lib/cmake/ember/ (find_package(ember CONFIG)), lib/pkgconfig/ember.pc
#   tools   (ember-tools)   bin/ember
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(EMBER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ember)
install(FILES include/ember.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
foreach(lib IN LISTS EMBER_LIBRARIES)
  install(TARGETS ${lib} EXPORT ${lib}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT ${lib} NAMESPACE ember:: FILE ${lib}-targets.cmake
          DESTINATION ${EMBER_CMAKE_DIR} COMPONENT dev)
endforeach()
if(EMBER_BUILD_TOOLS)
  install(TARGETS ember_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
endif()

# The CMake package. 0.x: a minor version may break the API, so 0.2 accepts 0.2.* only.
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/emberConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/emberConfig.cmake INSTALL_DESTINATION ${EMBER_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/emberConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/emberConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/emberConfigVersion.cmake
        DESTINATION ${EMBER_CMAKE_DIR} COMPONENT dev)

# ember.pc, relocatable: its prefix is found from where the file lies (pkg-config's pcfiledir).
file(RELATIVE_PATH EMBER_PC_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(JOIN " " EMBER_PC_REQUIRES_LINE ${EMBER_PC_REQUIRES})
string(JOIN " " EMBER_PC_LIBS_LINE ${EMBER_PC_LIBS})
string(JOIN ", " EMBER_PC_BACKENDS ${EMBER_BACKENDS})
configure_file(${CMAKE_CURRENT_LIST_DIR}/ember.pc.in ${CMAKE_CURRENT_BINARY_DIR}/ember.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ember.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# .deb packages: cpack -G DEB in the build folder
set(CPACK_PACKAGE_NAME ember)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "BERT encoder inference in C, on the CPU or an NVIDIA GPU")
set(CPACK_PACKAGE_CONTACT "ember developers")
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libember${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libember-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libjansson-dev, libutf8proc-dev, libopenblas-dev")
set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME ember-tools)
set(CPACK_COMPONENT_DEV_DEPENDS runtime)
include(CPack)
