/* sec-ids: prints its real and effective uid and gid, "RUID EUID RGID
 * EGID". test-mount-security copies it into layers as a setuid-root and a
 * setgid-root program, to see whether a mount lets either take effect. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("%u %u %u %u\n", (unsigned)getuid(), (unsigned)geteuid(),
	       (unsigned)getgid(), (unsigned)getegid());
	return 0;
}
