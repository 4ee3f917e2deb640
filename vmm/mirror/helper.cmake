# The mirror helper program: freestanding x86_64 code built with its own flags and linker script, turned
# into a flat binary and embedded into kite_mirror as a generated C++ array (kite needs no side files).
# Included from vmm/mirror/CMakeLists.txt after kite_mirror is defined.
set(KITE_HELPER_DIR ${CMAKE_CURRENT_SOURCE_DIR}/helper)
set(KITE_HELPER_OUT ${CMAKE_CURRENT_BINARY_DIR}/mirror_helper)
find_program(KITE_HELPER_CC NAMES gcc cc REQUIRED)
find_program(KITE_OBJCOPY NAMES objcopy llvm-objcopy-14 REQUIRED)

# -mcmodel=large: the helper lives just below 4 GiB, outside the small model's +-2 GiB reach.
# -mgeneral-regs-only: no SSE/x87 state to set up or preserve.
set(KITE_HELPER_CFLAGS -std=c11 -O2 -ffreestanding -nostdlib -fno-pic -fno-pie -mno-red-zone -mcmodel=large
    -mgeneral-regs-only -fno-stack-protector -fno-asynchronous-unwind-tables -fno-builtin -Wall -Wextra -Werror
    -I${PROJECT_SOURCE_DIR})

add_custom_command(
  OUTPUT ${KITE_HELPER_OUT}/helper.elf
  COMMAND ${CMAKE_COMMAND} -E make_directory ${KITE_HELPER_OUT}
  COMMAND ${KITE_HELPER_CC} ${KITE_HELPER_CFLAGS} -static -Wl,--build-id=none -Wl,--no-warn-rwx-segments -Wl,-T,${KITE_HELPER_DIR}/helper.ld
          -o ${KITE_HELPER_OUT}/helper.elf ${KITE_HELPER_DIR}/helper.c
  DEPENDS ${KITE_HELPER_DIR}/helper.c ${KITE_HELPER_DIR}/helper.ld ${CMAKE_CURRENT_SOURCE_DIR}/helper_abi.h
          ${CMAKE_CURRENT_SOURCE_DIR}/seal_core.h
  COMMENT "Building the mirror helper program"
  VERBATIM)

add_custom_command(
  OUTPUT ${KITE_HELPER_OUT}/helper.bin
  COMMAND ${KITE_OBJCOPY} -O binary ${KITE_HELPER_OUT}/helper.elf ${KITE_HELPER_OUT}/helper.bin
  DEPENDS ${KITE_HELPER_OUT}/helper.elf
  VERBATIM)

add_custom_command(
  OUTPUT ${KITE_HELPER_OUT}/helper_image.cpp
  COMMAND ${CMAKE_COMMAND} -DINPUT=${KITE_HELPER_OUT}/helper.bin -DOUTPUT=${KITE_HELPER_OUT}/helper_image.cpp
          -P ${KITE_HELPER_DIR}/embed.cmake
  DEPENDS ${KITE_HELPER_OUT}/helper.bin ${KITE_HELPER_DIR}/embed.cmake
  VERBATIM)

target_sources(kite_mirror PRIVATE ${KITE_HELPER_OUT}/helper_image.cpp)
