/* The install prefix of a static libmimic_lua.a: `make install` recompiles
 * this file with MIMIC_LUA_PREFIX=PREFIX and replaces it in the installed
 * archive, so a host linked statically, wherever its executable lives, finds
 * mimic's pure-Lua modules in PREFIX/share/lua/5.4 (lua/host.c). Empty in the
 * build tree, where the binaries' locations tell. */
#ifndef MIMIC_LUA_PREFIX
#define MIMIC_LUA_PREFIX ""
#endif

extern const char mimic_lua_prefix[];
const char mimic_lua_prefix[] = MIMIC_LUA_PREFIX;
