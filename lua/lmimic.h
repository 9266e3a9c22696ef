/* The Lua binding of mimic: shared declarations of the lua/*.c files. */
#ifndef LMIMIC_H
#define LMIMIC_H

#include <lua.h>

/* Opens the module: `require "mimic"`, and preloaded by the mimic executable. */
int luaopen_mimic(lua_State *L);

#endif
