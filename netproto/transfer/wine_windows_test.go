package transfer

import "syscall"

// underWine says whether this Windows test binary runs under Wine (CI's
// .ci/wine.sh), whose ntdll exports wine_get_version: tests use it only to
// skip a check of the environment's speed that Wine cannot meet, never a
// check of fxsh's behaviour.
func underWine() bool {
	return syscall.NewLazyDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}
