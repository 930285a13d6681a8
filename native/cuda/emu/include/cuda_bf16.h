// Stand-in for the toolkit header under the CPU emulation (see ../fs_emu.h).
#pragma once
#include "../fs_emu.h"
