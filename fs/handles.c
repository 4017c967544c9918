/* handles.c: the list of open file and directory handles. The kernel
 * releases each one it opened, but a release still in flight when the
 * session ends is never served: at exit the daemon frees what is left. */
#include "plyfs.h"

void plyfs_handle_add(struct plyfs *fs, struct plyfs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->prev = &fs->handles;
	h->next = fs->handles.next;
	fs->handles.next->prev = h;
	fs->handles.next = h;
	pthread_mutex_unlock(&fs->handles_lock);
}

void plyfs_handle_del(struct plyfs *fs, struct plyfs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
}

void plyfs_handles_free_all(struct plyfs *fs)
{
	while (fs->handles.next != &fs->handles) {
		struct plyfs_handle *h = fs->handles.next;

		plyfs_handle_del(fs, h);
		h->free(h);
	}
}
