/*
 * A stand-in for Windows' bcryptprimitives.dll, for running Go programs
 * under Wine 8 in CI only (never shipped). Go >= 1.24 takes its random
 * bytes from ProcessPrng in bcryptprimitives.dll, which Wine 8 lacks; this
 * DLL answers it from advapi32's RtlGenRandom (SystemFunction036), which
 * Wine has. .ci/wine.sh builds it with mingw-w64 and puts it beside the
 * test binaries, where Windows looks for a DLL first.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
