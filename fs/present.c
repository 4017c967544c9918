/* present.c: how the mount shows owners and link counts (uidmapping=,
 * gidmapping=, squash_to_*=, static_nlink), and the way back for ids
 * that the kernel hands us to store. */
#include "plyfs.h"

void plyfs_present(const struct plyfs *fs, struct stat *st)
{
	st->st_uid = fs->squash_uid >= 0 ?
			     (uid_t)fs->squash_uid :
			     ply_idmap_to_presented(fs->uidmap, st->st_uid);
	st->st_gid = fs->squash_gid >= 0 ?
			     (gid_t)fs->squash_gid :
			     ply_idmap_to_presented(fs->gidmap, st->st_gid);
	if (fs->static_nlink && S_ISDIR(st->st_mode))
		st->st_nlink = 1;
}

uid_t plyfs_disk_uid(const struct plyfs *fs, uid_t uid)
{
	return uid == (uid_t)-1 ? uid : ply_idmap_to_disk(fs->uidmap, uid);
}

gid_t plyfs_disk_gid(const struct plyfs *fs, gid_t gid)
{
	return gid == (gid_t)-1 ? gid : ply_idmap_to_disk(fs->gidmap, gid);
}
