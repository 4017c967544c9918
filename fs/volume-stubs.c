/* volume-stubs.c: TEMPORARY, until lib/volstore.c and lib/populate.c land
 * (built only while they are missing): volumes answer ENOSYS. */
#include <errno.h>

#include "ply.h"

int ply_volstore_open(const char *path, bool create, struct ply_volstore *ret,
		      struct ply_err *err)
{
	return ply_err_set(err, -ENOSYS, "volumes are not built in yet");
}

void ply_volstore_close(struct ply_volstore *vs)
{
}

int ply_volstore_create(const struct ply_volstore *vs, const char *name,
			char **ret_name, bool *ret_created,
			struct ply_err *err)
{
	return -ENOSYS;
}

int ply_volstore_attach(const struct ply_volstore *vs, const char *name,
			const char *mountpoint, int *ret_datafd,
			int *ret_lockfd, struct ply_err *err)
{
	return -ENOSYS;
}

int ply_dir_is_empty(int fd)
{
	return -ENOSYS;
}

int ply_populate(const struct ply_stack *stack, const struct ply_part *parts,
		 size_t nparts, int dst)
{
	return -ENOSYS;
}
