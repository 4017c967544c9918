/* libply: the union core, with no FUSE in it.
 * This header reads as the table of contents: one section per module, in the
 * order a request flows through them (options -> stack -> markers -> lookup ->
 * inode table -> merged readdir). Functions return >= 0 on success and
 * -errno on failure; ret_* output parameters are set only on success. */
#ifndef PLY_H
#define PLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>

#define PLY_MAX_LAYERS 500

/* ---- err.c: one-line diagnostics for the caller to print ---------------- */
struct ply_err {
	char msg[1024];
};
/* Formats msg into err (if err is non-NULL) and returns code (a -errno). */
int ply_err_set(struct ply_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- log.c: lib/ logs only at debug level, through a settable sink ------ */
typedef void (*ply_log_sink)(const char *line);
void ply_log_set_sink(ply_log_sink sink);
void ply_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- options.c: the overlayfs / fuse-overlayfs option syntax ------------ */
enum ply_tristate { PLY_UNSET = -1, PLY_OFF = 0, PLY_ON = 1 };

/* ---- idmap.c: uidmapping= and gidmapping= ------------------------------- */
/* Ranges of "ondisk:presented:length", as fuse-overlayfs reads them: an
 * object owned by an on-disk id in a range is shown as the presented one,
 * and the other way round for what is written. No ranges: identity.
 * Unmapped ids show as 65534. */
struct ply_idmap_range {
	uint32_t presented, ondisk, len;
};
struct ply_idmap {
	struct ply_idmap_range *ranges;
	size_t n;
};
#define PLY_OVERFLOW_ID 65534
/* -EINVAL, with err (if non-NULL) saying why in a few words and ret left
 * as it was, for anything but whole triples of decimal ids below 2^32
 * whose ranges end by 2^32, are not empty, and overlap no other range on
 * either side. */
int ply_idmap_parse(const char *spec, struct ply_idmap *ret,
		    struct ply_err *err);
void ply_idmap_free(struct ply_idmap *map);
uint32_t ply_idmap_to_presented(const struct ply_idmap *map, uint32_t ondisk);
uint32_t ply_idmap_to_disk(const struct ply_idmap *map, uint32_t presented);

/* How plyfs writes whiteouts and opaque markers in the upper layer. */
enum ply_wh_format {
	PLY_WH_AUTO = 0, /* probe: chardev where allowed, else xattr */
	PLY_WH_CHARDEV,  /* char device 0/0, opaque by overlay.opaque xattr */
	PLY_WH_XATTR,    /* zero-size file with overlay.whiteout, parent
			  * marked overlay.opaque=x (unprivileged users) */
	PLY_WH_FILE,     /* OCI ".wh.NAME" files and ".wh..wh..opq" */
};

/* bind=SRC:DEST[:ro] and volume=NAME:DEST[:ro][:nocopy] */
enum ply_splice_kind { PLY_SPLICE_BIND, PLY_SPLICE_VOLUME };
struct ply_splice_spec {
	enum ply_splice_kind kind;
	char *source; /* bind: a host path; volume: a name, "" anonymous */
	char *dest;   /* the path in the merged tree, as given */
	bool ro, nocopy;
};

struct ply_options {
	char **lowerdirs; /* top first, as given (escapes removed) */
	size_t nlower;
	char *upperdir;
	char *workdir;
	double timeout; /* entry/attr cache seconds; < 0: not given */
	enum ply_tristate threaded; /* multithreaded session loop */
	enum ply_wh_format whiteout;
	bool nosync; /* fsync=0: copy-ups are not synced */
	bool volatile_mount; /* volatile: no syncs; an unclean stop is
			      * remembered and refused at the next mount */
	bool noacl;  /* no POSIX ACL enforcement by the kernel */
	bool writeback; /* writeback=1: the kernel's writeback cache */
	struct ply_idmap uidmap, gidmap;
	bool squash_to_root;
	int64_t squash_uid, squash_gid; /* -1: not given */
	bool static_nlink;           /* directories report st_nlink 1 */
	int xattr_permissions;       /* 0, or 1/2: ownership kept in xattrs */
	struct ply_splice_spec *splices;
	size_t nsplices;
	char *volstore; /* volstore=DIR, or NULL: the default store */
	/* options accepted for compatibility but not implemented yet, each
	 * named once so the daemon can warn about them */
	char **unimplemented;
	size_t nunimplemented;
	/* options that belong to the FUSE mount itself, comma-joined */
	char *fuse_opts;
};

void ply_options_init(struct ply_options *opts);
/* Parses one -o argument and adds it to opts (several -o accumulate). */
int ply_options_parse(struct ply_options *opts, const char *optstr,
		      struct ply_err *err);
/* Checks what a whole option set needs (lowerdir given, upper with work). */
int ply_options_validate(const struct ply_options *opts, struct ply_err *err);
void ply_options_free(struct ply_options *opts);
/* Splits s at unescaped sep, removing backslash escapes from each part. */
int ply_split_escaped(const char *s, char sep, char ***ret_parts,
		      size_t *ret_n);
void ply_strv_free(char **v, size_t n);

/* ---- stack.c: the layers, opened once, each reached only by its fd ------ */
#define PLY_LAYER_ID_UPPER 0
#define PLY_LAYER_ID_HASHED 1023
#define PLY_LAYER_ID_VIRTUAL 1022 /* directories on the way to a splice */

struct ply_layer {
	char *path; /* absolute, for messages only */
	int fd;     /* O_PATH|O_DIRECTORY of the layer root, owned */
	dev_t dev;
	ino_t ino;
	uint16_t id; /* inode-number namespace: 0 upper, 1.. lowers, then
		      * splices */
	bool is_upper;
	bool is_splice; /* a volume or bind: a plain tree, no markers, changed
			 * in place */
	bool ro;        /* a read-only splice */
	bool override; /* objects may carry ownership in an override xattr */
};

struct ply_snode;

struct ply_stack {
	struct ply_layer *layers; /* upper (if any) first, then top..bottom,
				   * then the splices */
	size_t nlayers;
	size_t nunion;            /* upper and lowers: layers[0..nunion) */
	struct ply_snode *splices; /* the tree of splice paths, or NULL */
	bool has_upper;
	int workfd; /* O_PATH of workdir, or -1 */
	char *workdir;
	int indexfd; /* WORKDIR/plyfs-index: the upper copies of hard-linked
		      * lower files, by st_ino; -1 without an upper */
	/* how markers are written in the upper (ply_stack_probe_upper) */
	enum ply_wh_format wh_format;
	const char *xattr_ns; /* "trusted.", "user.", or NULL: no xattrs */
	const char *override_xattr; /* xattr_permissions=: where the upper
				     * keeps ownership, or NULL */
};

int ply_stack_open(struct ply_stack *stack, const struct ply_options *opts,
		   struct ply_err *err);
/* Refuses a mountpoint that lies inside a layer or that holds one. */
int ply_stack_check_mountpoint(const struct ply_stack *stack, const char *mnt,
			       struct ply_err *err);
void ply_stack_close(struct ply_stack *stack);
/* Finds out what the upper filesystem lets this process write, by trying
 * in the directory workfd: trusted.* xattrs (else user.*), and character
 * device 0/0 whiteouts. forced, unless PLY_WH_AUTO, is checked instead. */
int ply_stack_probe_upper(struct ply_stack *stack, int workfd,
			  enum ply_wh_format forced, struct ply_err *err);

/* ---- splice.c: volumes and binds grafted into the merged tree ---------- */
/* One node per path component on the way to a splice's DEST. */
struct ply_snode {
	char *name;
	struct ply_snode *children;
	size_t nchildren;
	int layer;          /* the splice's layer, or -1: a directory on the
			     * way to one */
	uint64_t ino;       /* st_ino of what stands here */
	unsigned char type; /* DT_DIR, or DT_REG etc. for a file bind */
	struct stat vstat;  /* for a directory on the way that no layer has */
};

/* Adds a splice of the object source_fd (O_PATH; taken over) at dest,
 * checking dest: a plain relative-or-absolute path without "." or "..",
 * not given twice. */
int ply_splice_add(struct ply_stack *stack, const struct ply_splice_spec *spec,
		   int source_fd, const char *source_label, struct ply_err *err);
/* Refuses a DEST that crosses a symlink or a non-directory in the
 * merged view of the layers; directories on the way that no layer holds
 * take the owner of the merged root. */
int ply_splice_check(const struct ply_stack *stack, struct ply_err *err);
const struct ply_snode *ply_snode_child(const struct ply_snode *node,
					const char *name);
void ply_splice_free(struct ply_snode *root);

/* ---- ino.c: stable, unique inode numbers (see docs/inode-numbers.md) ---- */
#define PLY_INO_BITS 54
uint64_t ply_ino_compose(const struct ply_layer *layer, dev_t dev, ino_t ino);

/* ---- marker.c: whiteout and opaque codecs, every format read ------------ */
#define PLY_WH_PREFIX ".wh."
#define PLY_WH_PREFIX_LEN 4
#define PLY_WH_OPAQUE ".wh..wh..opq"

enum ply_opaque {
	PLY_DIR_PLAIN = 0,  /* no marker */
	PLY_DIR_OPAQUE,     /* hides everything below */
	PLY_DIR_XWHITEOUTS, /* not opaque, but may hold xattr whiteouts */
};

/* True for names plyfs never lists nor returns: every .wh. name. */
bool ply_marker_name_reserved(const char *name);
/* For ".wh.NAME" (not ".wh..wh.*") returns NAME, else NULL. */
const char *ply_marker_whiteout_target(const char *name);
/* Which of the overlay/plyfs xattrs an object carries, in any namespace,
 * from one listxattr: the readers below need not ask for absent ones. */
enum ply_marks {
	PLY_MARK_OPAQUE = 1 << 0,
	PLY_MARK_REDIRECT = 1 << 1,
	PLY_MARK_IMPURE = 1 << 2,
	PLY_MARK_METACOPY = 1 << 3,
	PLY_MARK_ORIGIN = 1 << 4,
};
unsigned ply_marker_present(int fd);
/* Reads the opaque state of a directory in one layer; dirfd is the
 * directory itself (O_PATH is fine). */
int ply_marker_dir_state(int dirfd, enum ply_opaque *ret_state);
int ply_marker_dir_state_marks(int dirfd, unsigned marks,
			       enum ply_opaque *ret_state);
/* Is the entry name (with its lstat st) in directory dirfd a whiteout?
 * dir_state says whether xattr whiteouts may be present. 1 yes, 0 no. */
int ply_marker_is_whiteout(int dirfd, const char *name, const struct stat *st,
			   enum ply_opaque dir_state);
/* Reads a directory's overlay.redirect into buf: the name (same parent)
 * or the path from the layer root ("/a/b") where its lower content is.
 * -ENODATA when it has none, -EINVAL for a malformed one. */
int ply_marker_dir_redirect(int fd, char *buf, size_t size);
int ply_marker_set_redirect(const struct ply_stack *stack, int fd,
			    const char *path);
/* Does the upper directory fd carry overlay.impure (copied-up entries)? */
bool ply_marker_dir_impure(int fd);
/* The pure decoders behind the readers above, on the bytes an xattr call
 * returned (fuzzed by tests/fuzz/fuzz-marker.c): the marks named in a
 * listxattr list of size bytes; the state an overlay.opaque value
 * announces ("y" opaque, "x" xattr whiteouts, anything else plain); an
 * overlay.redirect value checked and copied NUL-terminated into buf
 * (-EINVAL for a malformed one or one that does not fit bufsize). */
unsigned ply_marker_marks_parse(const char *list, size_t size);
enum ply_opaque ply_marker_opaque_parse(const void *value, size_t size);
int ply_marker_redirect_parse(const void *value, size_t size, char *buf,
			      size_t bufsize);

/* Writers, in the format the stack probed (stack->wh_format, xattr_ns).
 * Creates a whiteout for name in dirfd (a directory of the upper or the
 * work directory). With PLY_WH_FILE the object is ".wh.NAME". */
int ply_marker_make_whiteout(const struct ply_stack *stack, int dirfd,
			     const char *name);
/* Prepares the upper directory fd to hold whiteouts of the stack's
 * format (xattr whiteouts need their parent marked overlay.opaque=x). */
int ply_marker_prepare_parent(const struct ply_stack *stack, int fd);
int ply_marker_set_opaque(const struct ply_stack *stack, int fd);
int ply_marker_set_impure(const struct ply_stack *stack, int fd);
/* True for xattrs private to plyfs or overlayfs: hidden and unsettable
 * in the union (inside a splice, a plain tree, nothing is private). */
bool ply_xattr_is_private(const char *name);

/* ---- namei.c: looking a name up across the layers ----------------------- */
/* One layer's piece of a merged object: a non-directory has exactly one,
 * a merged directory one per layer it spans, top first. */
struct ply_part {
	uint16_t layer; /* index into stack->layers */
	int fd;         /* O_PATH|O_NOFOLLOW, owned by whoever holds the part;
			 * -1 while an inode's fds are closed (inode.c) */
	enum ply_opaque state; /* directories only */
	dev_t dev;      /* the real object, to check a reopen against */
	ino_t ino;
	/* upper-layer parts only: */
	uint64_t origin; /* st_ino kept from before a copy-up, or 0 */
	bool metacopy;   /* a metacopy file: the data is in the next part */
	bool impure;     /* a directory holding copied-up entries */
	bool indexed;    /* the upper copy of a hard-linked lower file, found
			  * in the index: not yet under this name */
	/* lower directories only: a listing saw no marker name in it, so
	 * lookups need not probe it for ".wh.NAME" (atomic) */
	bool no_wh_files;
};

struct ply_lookup {
	struct stat st; /* of the topmost part, st_ino composed */
	struct ply_part *parts; /* none for a directory on the way to a
				 * splice that no layer holds */
	size_t nparts;
	const struct ply_snode *snode; /* its place in the splice tree */
};

/* The name of the index entry for the lower object of st_ino ino. */
void ply_index_name(uint64_t ino, char *buf, size_t size);
/* Checks a name from the kernel: not empty, no '/', not . or .., short. */
int ply_name_check(const char *name);
/* Looks name up in the merged directory made of parts. -ENOENT when the
 * name does not exist or is hidden; on success ret owns the part fds. */
int ply_lookup_name(const struct ply_stack *stack,
		    const struct ply_part *parent, size_t nparent,
		    const char *name, struct ply_lookup *ret);
/* What a lookup saw in each layer it visited, for plyctl which. */
enum ply_seen {
	PLY_SEEN_NOTHING,       /* name absent in this layer */
	PLY_SEEN_OBJECT,        /* part of the result */
	PLY_SEEN_WHITEOUT,      /* a char device 0/0 or xattr whiteout */
	PLY_SEEN_WHITEOUT_FILE, /* a ".wh.NAME" file */
	PLY_SEEN_HIDDEN_NONDIR, /* a non-directory below a directory */
};
struct ply_trace_step {
	uint16_t layer;
	enum ply_seen seen;
	mode_t mode;
	enum ply_opaque state; /* of a directory object */
	bool wh_file;          /* a ".wh.NAME" beside the object, too */
};
#define PLY_TRACE_MAX (PLY_MAX_LAYERS + 1)
struct ply_trace {
	struct ply_trace_step steps[PLY_TRACE_MAX];
	size_t n;
};
/* ply_lookup_name, recording each layer's step in trace. */
int ply_lookup_traced(const struct ply_stack *stack,
		      const struct ply_part *parent, size_t nparent,
		      const char *name, struct ply_lookup *ret,
		      struct ply_trace *trace);
/* ply_lookup_name in a directory that has a place in the splice tree
 * (snode, NULL for none): a splice standing at name wins, and a directory
 * on the way to one shows even where no layer has it. */
int ply_lookup_child(const struct ply_stack *stack,
		     const struct ply_part *parent, size_t nparent,
		     const struct ply_snode *snode, const char *name,
		     unsigned flags, struct ply_lookup *ret);
/* ply_lookup_child's flags: leave the one part of a lower non-directory
 * closed (fd -1, dev and ino set), for the inode table to open when it is
 * used; a listing that looks up every entry saves an open and a close per
 * file. */
#define PLY_LOOKUP_LAZY 1u
/* Builds the root: every layer's root, merged. */
int ply_lookup_root(const struct ply_stack *stack, struct ply_lookup *ret);
void ply_lookup_release(struct ply_lookup *lk);
/* Reports the stat of a merged object's topmost part, st_ino composed and,
 * for a directory that spans layers, st_nlink 1 as overlayfs does. */
int ply_object_stat(const struct ply_stack *stack, const struct ply_part *parts,
		    size_t nparts, struct stat *ret_st);

/* ---- workdir.c: the work directory's scratch space and lock ------------ */
/* Temporaries live in WORKDIR/work (where the kernel's overlayfs keeps
 * its own), named "#plyfs-<hex>"; hard-link records in WORKDIR/index. */
#define PLY_WORK_SUBDIR "work"
#define PLY_INDEX_SUBDIR "index"
#define PLY_TEMP_PREFIX "#plyfs-"
#define PLY_LINKS_SUBDIR "plyfs-index"

struct ply_workdir {
	int fd;       /* O_PATH of WORKDIR */
	int workfd;   /* O_PATH of WORKDIR/work */
	int lockfd;   /* WORKDIR/.plyfs.lock: holds the exclusive lock on
		       * the workdir while mounted */
	int upper_lockfd; /* the upper directory itself, read-only: holds
			   * its exclusive lock while mounted */
};

/* Opens (creating work/ if needed) and locks the work directory of
 * stack, refusing with -EBUSY and a clear err when another mount holds
 * it, and removes what a crashed mount left in work/. */
int ply_workdir_open(const struct ply_stack *stack, struct ply_workdir *ret,
		     struct ply_err *err);
void ply_workdir_close(struct ply_workdir *wd);
/* volatile mounts, as the kernel's: WORKDIR/work/incompat/volatile
 * exists while one is up, and a mount that finds it refuses to start. */
int ply_workdir_check_volatile(const struct ply_workdir *wd,
			       const struct ply_stack *stack,
			       struct ply_err *err);
int ply_workdir_mark_volatile(const struct ply_workdir *wd);
void ply_workdir_unmark_volatile(const struct ply_workdir *wd);
/* Opens (creating it) WORKDIR/plyfs-index, the hard-link index. */
int ply_workdir_open_links(const struct ply_workdir *wd, int *ret_fd);
/* Makes a fresh temporary name in buf (at least 32 bytes). */
void ply_workdir_temp_name(char *buf, size_t size);

/* ---- copyup.c: the atomic copy of an object into the upper layer -------- */
enum ply_copyup_flags {
	PLY_COPYUP_METACOPY = 1 << 0, /* metadata only: the data stays in the
				       * lower file (overlay.metacopy) */
	PLY_COPYUP_EMPTY = 1 << 1,    /* no data: an open with O_TRUNC */
	PLY_COPYUP_SYNC = 1 << 2,     /* fsync copied data before moving
				       * into place */
	PLY_COPYUP_REPLACE = 1 << 3,  /* replace an existing upper name (the
				       * data following a metacopy) */
};

struct ply_copyup_req {
	int workfd;          /* WORKDIR/work */
	int data_fd;         /* O_PATH of the object whose data to copy */
	int meta_fd;         /* O_PATH of the object whose metadata to copy */
	const struct stat *meta_st; /* its lstat; gives type, owner, mode,
				     * times and size */
	int upper_dirfd;     /* the upper directory to put it in */
	const char *name;    /* its name there */
	unsigned flags;      /* enum ply_copyup_flags */
	const char *xattr_ns; /* "trusted." or "user.": our own markers */
	uint64_t origin_ino; /* st_ino to keep (recorded as plyfs.origin);
			      * 0: record none */
};

/* Copies one object up. It is built in workfd as a temporary: the same
 * kind of object (regular file, directory (empty), symlink, fifo, socket,
 * device); data first for a regular file (FICLONE, else copy_file_range,
 * else read/write; holes stay holes); then owner, then xattrs (all but
 * the private ones), then mode, then times; synced with PLY_COPYUP_SYNC;
 * then renamed to upper_dirfd/name (RENAME_NOREPLACE unless REPLACE).
 * Any failure removes the temporary and leaves the upper as it was. On
 * success *ret_fd is an O_PATH fd of the new upper object. */
int ply_copyup(const struct ply_copyup_req *req, int *ret_fd);
/* The link count of a hard-linked lower file whose names share one upper
 * copy (the index): kept in plyfs.nlink on that copy, as the names it has
 * in the union, lower and upper. ply_nlink_adjust adds delta to it when
 * it is there (a link made, a name removed). */
int ply_nlink_read(int fd, nlink_t *ret);
int ply_nlink_write(const char *xattr_ns, int fd, nlink_t n);
void ply_nlink_adjust(const char *xattr_ns, int fd, int delta);
/* Reads the origin st_ino a copy-up recorded on an upper object; -ENODATA
 * when there is none. */
int ply_copyup_origin(int fd, uint64_t *ret_ino);
/* Is the upper regular file fd a metacopy (its data still below)? */
bool ply_copyup_is_metacopy(int fd);

/* ---- override.c: ownership kept in an xattr (xattr_permissions=) ------- */
#define PLY_OVERRIDE_CONTAINERS "user.containers.override_stat"
#define PLY_OVERRIDE_PRIVILEGED "security.fuseoverlayfs.override_stat"
/* Is name one of the override xattrs (read in any layer that has them)? */
bool ply_override_name(const char *name);
/* Replaces st's owner and permission bits by fd's override xattr: 1 when
 * it has one, 0 when not, -EINVAL for a malformed one. */
int ply_override_read(int fd, struct stat *st);
int ply_override_write(int fd, const char *name, uid_t uid, gid_t gid,
		       mode_t mode);

/* ---- volstore.c: named volumes that outlive mounts ---------------------- */
/* The store: STORE/volumes/NAME/_data holds a volume's files; next to it,
 * a lock file that every mount using the volume holds shared, and a
 * record of those mounts. Metadata is written atomically (temp + rename),
 * and creation races between processes are settled by mkdir. */
struct ply_volstore {
	int fd;     /* O_PATH of STORE */
	char *path; /* absolute, for messages */
};

/* The default store: $XDG_DATA_HOME/plyfs (~/.local/share/plyfs) for a
 * user, /var/lib/plyfs for root. Returns a malloc'd path. */
char *ply_volstore_default_path(void);
/* Opens (creating when asked) the store at path (NULL: the default). */
int ply_volstore_open(const char *path, bool create, struct ply_volstore *ret,
		      struct ply_err *err);
void ply_volstore_close(struct ply_volstore *vs);
/* Valid volume names: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 bytes. */
bool ply_volstore_name_ok(const char *name);
/* Creates volume name if missing; name NULL or "" makes an anonymous one
 * with a random 64-hex-digit name. *ret_name (malloc'd) is the name,
 * *ret_created whether it is new. */
int ply_volstore_create(const struct ply_volstore *vs, const char *name,
			char **ret_name, bool *ret_created,
			struct ply_err *err);
/* Marks the volume used by the mount at mountpoint for as long as
 * *ret_lockfd stays open, and opens its data directory (O_PATH). */
int ply_volstore_attach(const struct ply_volstore *vs, const char *name,
			const char *mountpoint, int *ret_datafd,
			int *ret_lockfd, struct ply_err *err);
/* What plyctl volume needs (added with the store): the names of the
 * volumes, sorted; -ENOENT never (a missing store holds none). */
int ply_volstore_list(const struct ply_volstore *vs, char ***ret_names,
		      size_t *ret_n, struct ply_err *err);
/* Is the volume in use (does a mount hold its lock)? 1 yes (*ret_mounts,
 * when asked for, gets the mountpoints of the mounts using it, sorted;
 * the records of processes that are gone are left out while live ones
 * remain), 0 no: then every record is stale and removed on the way. */
int ply_volstore_in_use(const struct ply_volstore *vs, const char *name,
			char ***ret_mounts, size_t *ret_n,
			struct ply_err *err);
struct ply_volume_info {
	char *name;
	char *data_path;   /* STORE/volumes/NAME/_data */
	char created[40];  /* RFC 3339, UTC; "" when unknown */
	bool anonymous;
	bool in_use;
	char **mountpoints; /* of the mounts using it (see _in_use) */
	size_t nmountpoints;
};
int ply_volstore_inspect(const struct ply_volstore *vs, const char *name,
			 struct ply_volume_info *ret, struct ply_err *err);
void ply_volume_info_free(struct ply_volume_info *info);
/* The space the volume's files take, as du counts it: st_blocks * 512 of
 * everything in _data, each hard-linked inode once, no link followed. */
int ply_volstore_size(const struct ply_volstore *vs, const char *name,
		      uint64_t *ret_bytes, struct ply_err *err);
/* Removes a volume nobody uses: -EBUSY, naming the mounts, when one does
 * (there is no forcing that), -ENOENT when there is no such volume. */
int ply_volstore_remove(const struct ply_volstore *vs, const char *name,
			struct ply_err *err);
/* Removes every unused anonymous volume (all: every unused volume),
 * calling removed (may be NULL) for each. Returns the first failure,
 * after trying them all. */
int ply_volstore_prune(const struct ply_volstore *vs, bool all,
		       void (*removed)(const char *name, void *ctx), void *ctx,
		       struct ply_err *err);
/* A volume being filled carries a mark until the filling ends, so that a
 * filling cut short by a crash is started over, never taken as done.
 * ply_volstore_fill_pending: 1 when a filling was cut short. */
int ply_volstore_fill_begin(const struct ply_volstore *vs, const char *name);
int ply_volstore_fill_end(const struct ply_volstore *vs, const char *name);
int ply_volstore_fill_pending(const struct ply_volstore *vs,
			      const char *name);
/* Is the directory fd (O_PATH is fine) empty? 1 yes, 0 no. */
int ply_dir_is_empty(int fd);
/* Copies the merged directory made of parts, with all it holds, into the
 * empty directory dst: owners, modes, times, xattrs (not private ones),
 * hard links and holes kept; never follows a symlink. */
int ply_populate(const struct ply_stack *stack, const struct ply_part *parts,
		 size_t nparts, int dst);

/* ---- which.c: where a path comes from (plyctl which) ------------------- */
enum ply_which_role {
	PLY_ROLE_PROVIDES, /* the topmost object: what the view shows */
	PLY_ROLE_MERGED,   /* a lower directory merged into it */
	PLY_ROLE_HIDES,    /* a whiteout that hides what is below */
	PLY_ROLE_SHADOWED, /* an object below the one shown */
	PLY_ROLE_HIDDEN,   /* an object hidden by a marker (see why) */
};
struct ply_which_row {
	uint16_t layer; /* index into stack->layers */
	enum ply_which_role role;
	mode_t mode;
	char marker[64]; /* the marker this row is or carries */
	char why[192];   /* hidden and shadowed rows: what is above them */
};
struct ply_which {
	struct ply_which_row rows[PLY_MAX_LAYERS + 1];
	size_t n;
	bool visible;
	size_t hidden_at;      /* > 0: a parent is not a visible directory */
	char hidden_path[4096]; /* that parent; the rows describe it */
};
int ply_which(const struct ply_stack *stack, const char *path,
	      struct ply_which *ret, struct ply_err *err);

/* ---- inode.c: the table of objects the kernel knows about --------------- */
/* An inode's part fds are a cache: the table keeps at most max_fds of them
 * open and closes those of the least recently used unpinned inodes. A
 * closed part is reopened from the same layer's part of the parent, by
 * name, and checked to be the same object (else -ESTALE). Use the fds of
 * an inode only between ply_inode_pin and ply_inode_unpin. */
struct ply_inode {
	uint64_t ino;   /* st_ino: also the key in the table */
	mode_t type;    /* S_IFMT bits */
	struct ply_inode *parent; /* the directory it was found in; counted
				   * in parent->nchildren; NULL for the root */
	char *name;     /* its name there */
	pthread_rwlock_t lock; /* protects parts (they change on copy-up) */
	struct ply_part *parts;
	size_t nparts;
	const struct ply_snode *snode; /* its place in the splice tree */
	struct ply_dir *listing; /* a directory's merged listing, kept while
				  * nothing changes it; under fd_lock */
	pthread_mutex_t fd_lock; /* serializes reopening the part fds */
	/* protected by the table lock: */
	uint64_t nlookup;  /* kernel references */
	uint64_t nchildren; /* inodes whose parent this is */
	uint64_t pins;     /* users of the part fds right now */
	unsigned misses;   /* lookups of absent names in it (atomic) */
	bool fds_open;
	bool orphan;       /* its name is gone: fds pinned until forgotten */
	bool listing_changed; /* a listing of it was dropped (atomic) */
	struct ply_inode *next; /* hash chain */
	struct ply_inode *lru_prev, *lru_next; /* unpinned, fds open */
};

struct ply_inode_table {
	pthread_mutex_t lock;
	struct ply_inode **buckets;
	size_t nbuckets;
	size_t count;
	struct ply_inode *root;
	struct ply_inode *lru_head, *lru_tail; /* head: least recently used */
	size_t open_fds, max_fds;
};

/* Sets up the table with root (its parts taken from lk) and a budget of
 * max_fds part fds. */
int ply_inode_table_init(struct ply_inode_table *table, struct ply_lookup *root,
			 size_t max_fds);
void ply_inode_table_destroy(struct ply_inode_table *table);
/* Finds the inode for lk's object (found as name in parent) or inserts
 * one, and adds one lookup reference. Takes ownership of lk's parts in
 * every case. */
int ply_inode_table_acquire(struct ply_inode_table *table,
			    struct ply_inode *parent, const char *name,
			    struct ply_lookup *lk, struct ply_inode **ret);
/* Whether the kernel holds a reference to inode ino, found as name in
 * parent: a listing need not look such an entry up again. */
bool ply_inode_table_knows(struct ply_inode_table *table,
			   const struct ply_inode *parent, const char *name,
			   uint64_t ino);
/* Drops n lookup references; frees the inode when nothing holds it. */
void ply_inode_table_forget(struct ply_inode_table *table,
			    struct ply_inode *inode, uint64_t n);
/* Replaces inode's parts (copy-up, rename): the new parts' fds are open
 * and owned by the inode from now; old fds not among them are closed.
 * The caller holds inode->lock for writing and a pin. */
void ply_inode_set_parts(struct ply_inode_table *table,
			 struct ply_inode *inode, struct ply_part *parts,
			 size_t nparts);
/* Records that inode is now name in newparent (after a rename). */
int ply_inode_move(struct ply_inode_table *table, struct ply_inode *inode,
		   struct ply_inode *newparent, const char *name);
/* Keeps the fds of an inode whose name is gone (unlinked, renamed over)
 * open until the kernel forgets it, as it can no longer be reopened by
 * name. The caller holds a pin, which this takes over. */
void ply_inode_orphan(struct ply_inode_table *table, struct ply_inode *inode);
bool ply_inode_is_orphan(struct ply_inode_table *table,
			 const struct ply_inode *inode);
/* Reads xattr name of inode's top part. An inode whose fds the cache has
 * closed is read by name through its parent (ls -l asks for an xattr of
 * every file: reopening each would cost three more calls). */
ssize_t ply_inode_getxattr(struct ply_inode_table *table,
			   struct ply_inode *inode, const char *name,
			   void *buf, size_t size);
/* The merged listing of a directory, shared: the one kept since it last
 * changed, else NULL. ply_inode_keep_listing keeps a listing read under
 * the inode's read lock (so no change came between); every change of the
 * directory's names, made under its write lock, drops it. Listings of
 * splices are never kept (their sources change behind the mount). */
struct ply_dir *ply_inode_listing(struct ply_inode *inode);
void ply_inode_keep_listing(const struct ply_stack *stack,
			    struct ply_inode *inode, struct ply_dir *dir);
void ply_inode_drop_listing(struct ply_inode *inode);
/* Whether names in the directory changed since the inode was made: a
 * listing of it has been dropped. */
bool ply_inode_listing_changed(const struct ply_inode *inode);
/* Whether a listing of inode would be kept (none of a splice is). */
bool ply_inode_listing_keepable(const struct ply_stack *stack,
				const struct ply_inode *inode);
/* Takes and drops a holder's reference on a shared listing. */
struct ply_dir *ply_dir_get(struct ply_dir *dir);
void ply_dir_put(struct ply_dir *dir);
/* The stat of a merged object, or of a directory on the way to a splice
 * that no layer holds. The caller holds a pin. */
int ply_inode_stat(const struct ply_stack *stack, const struct ply_inode *inode,
		   struct stat *ret_st);
/* Makes sure inode's part fds are open and keeps them so until unpin. */
int ply_inode_pin(struct ply_inode_table *table, struct ply_inode *inode);
void ply_inode_unpin(struct ply_inode_table *table, struct ply_inode *inode);

/* ---- upper.c: bringing merged objects into the upper layer ------------- */
/* What the changing operations need: the stack, the inode table, the
 * work directory, and whether copy-ups are synced. */
struct ply_union {
	struct ply_stack *stack;
	struct ply_inode_table *table;
	int workfd; /* WORKDIR/work */
	bool sync;
};

/* Gives inode a part in the upper layer, copying up its parents first.
 * flags: PLY_COPYUP_METACOPY for a change of metadata only,
 * PLY_COPYUP_EMPTY when the data is about to be truncated away; 0 copies
 * the data too, completing an earlier metacopy. Serialized per inode; the
 * caller holds no lock of inode's. */
int ply_upper_copy_up(const struct ply_union *u, struct ply_inode *inode,
		      unsigned flags);
/* The part holding a regular file's data (below a metacopy, else top). */
const struct ply_part *ply_upper_data_part(const struct ply_inode *inode);

/* ---- dirops.c: changing merged directories ------------------------------ */
/* What a new object is to be. */
struct ply_new {
	mode_t mode;          /* type and permission bits */
	dev_t rdev;           /* devices */
	const char *target;   /* symlinks */
	uid_t uid;            /* owner (applied when the process may) */
	gid_t gid;
	int open_flags;       /* regular files: how to open it, see below */
	mode_t umask;         /* the caller's, applied unless the parent
			       * directory has a default ACL */
};

/* Creates name in the merged directory dir, in the upper layer: in place
 * of a whiteout if there is one (atomically, and opaque for a directory
 * that hides lower content). -EEXIST if the merged view has the name.
 * A regular file is also opened with what->open_flags into *ret_fd
 * (ret_fd may be NULL otherwise). */
int ply_dirop_create(const struct ply_union *u, struct ply_inode *dir,
		     const char *name, const struct ply_new *what,
		     int *ret_fd);
/* Makes newname in dir a hard link to inode (copied up first). */
int ply_dirop_link(const struct ply_union *u, struct ply_inode *inode,
		   struct ply_inode *dir, const char *newname);
/* unlink and rmdir: removes name from the merged view, leaving a whiteout
 * where a lower layer still has it. rmdir refuses a directory whose merged
 * listing is not empty (-ENOTEMPTY). */
int ply_dirop_unlink(const struct ply_union *u, struct ply_inode *dir,
		     const char *name);
int ply_dirop_rmdir(const struct ply_union *u, struct ply_inode *dir,
		    const char *name);
/* rename(2) with RENAME_NOREPLACE and RENAME_EXCHANGE. */
int ply_dirop_rename(const struct ply_union *u, struct ply_inode *olddir,
		     const char *oldname, struct ply_inode *newdir,
		     const char *newname, unsigned int flags);
/* Removes name in dirfd and, for a directory, all it holds; never
 * follows a symlink (workdir.c). */
int ply_remove_tree(int dirfd, const char *name);

/* ---- readdir.c: the merged listing of one directory --------------------- */
struct ply_dirent {
	const char *name; /* points into the listing's pool */
	uint64_t ino;     /* equals the entry's st_ino */
	uint64_t cookie;  /* its position: the readdir offset just after it,
			   * the same in every listing of the directory */
	unsigned char type; /* DT_* */
	uint16_t layer;   /* index of the layer that provides it */
};

struct ply_dir {
	struct ply_dirent *entries; /* "." and "..", then by cookie */
	size_t count;
	char *pool;
	size_t pool_used, pool_size;
	uint64_t unmarked; /* bit i: parts[i] is a lower directory holding
			    * no marker name (ply_part.no_wh_files) */
	uint32_t *index; /* open addressing by name: entry index + 1, or 0 */
	size_t nindex;   /* slots, a power of two */
	unsigned refs; /* shared listings (ply_inode_listing): holders */
};

/* The entry of a listing named name, or NULL. */
const struct ply_dirent *ply_dir_find(const struct ply_dir *dir,
				      const char *name);
/* The index of the first entry after readdir offset off (0: the start).
 * Cookies come from the names, so an offset taken from one listing means
 * the same place in a later one however the directory changed between:
 * names listed before it are not listed again. */
size_t ply_dir_seek(const struct ply_dir *dir, uint64_t off);

/* Reads the merged listing of a directory made of parts: each name once,
 * topmost wins, markers and whited-out names left out. */
int ply_dir_read(const struct ply_stack *stack, const struct ply_part *parts,
		 size_t nparts, uint64_t self_ino, uint64_t parent_ino,
		 struct ply_dir *ret);
/* ply_dir_read of a directory with a place in the splice tree: the
 * splices and the directories on the way to them are listed too. */
int ply_dir_read_spliced(const struct ply_stack *stack,
			 const struct ply_part *parts, size_t nparts,
			 const struct ply_snode *snode, uint64_t self_ino,
			 uint64_t parent_ino, struct ply_dir *ret);
void ply_dir_free(struct ply_dir *dir);
/* The names in one real directory fd (O_PATH is fine), sorted, "." and
 * ".." left out: a plain listing of one layer, for the tools. */
int ply_dir_names(int fd, char ***ret, size_t *ret_n);
/* strcmp for qsort over an array of strings. */
int ply_strcmp_qsort(const void *a, const void *b);

/* ---- diff.c: what the upper layer changes (plyctl diff, commit) -------- */
/* The view now (every layer) against the view before (the lower layers
 * alone), in docker diff's terms. */
enum ply_diff_kind {
	PLY_DIFF_ADDED = 'A',   /* now, and nothing before */
	PLY_DIFF_CHANGED = 'C', /* now and before (parents of changes too) */
	PLY_DIFF_DELETED = 'D', /* before, and hidden now */
};
struct ply_diff_entry {
	const char *path; /* "/a/b", from the root of the merged view */
	enum ply_diff_kind kind;
	const struct ply_lookup *now;  /* A, C: the object as now shown */
	const struct ply_lookup *then; /* C, D: the object the lower layers
					* alone show (the topmost of it) */
	bool in_upper; /* A, C: the object is in the upper layer (else it
			* is lower content moved here by a redirect) */
	bool opaque;   /* A, C directory: what the lower layers hold at path
			* is hidden (an opaque directory, or a redirected
			* one): a new layer must mark it opaque and hold all
			* of its content */
	bool covered;  /* D: inside a directory reported opaque, so a new
			* layer needs no whiteout for it */
};
/* Called for each change; < 0 stops the walk with that result. */
typedef int (*ply_diff_fn)(const struct ply_diff_entry *e, void *ctx);
/* Walks the changes of stack's upper layer depth first, the names of each
 * directory in bytewise order: paths come sorted component by component,
 * each directory before what it holds. Reads the upper layer, looking
 * single names up below; only an opaque or redirected directory has its
 * lower listing read (one directory), and a redirected one its moved
 * content walked, every name of it reported. */
int ply_diff_walk(const struct ply_stack *stack, ply_diff_fn fn, void *ctx,
		  struct ply_err *err);
/* The part holding a regular file's data: below a metacopy, else top. */
const struct ply_part *ply_diff_data_part(const struct ply_lookup *lk);

/* The changes as a list, in ply_diff_walk's order. */
struct ply_change {
	char *path;
	enum ply_diff_kind kind;
	mode_t mode; /* of the object now (A, C) or before (D) */
};
struct ply_changes {
	struct ply_change *v;
	size_t n, cap;
};
int ply_diff_list(const struct ply_stack *stack, struct ply_changes *ret,
		  struct ply_err *err);
void ply_changes_free(struct ply_changes *c);

/* ---- check.c: what is wrong in an upper and work directory -------------- */
enum ply_problem_kind {
	PLY_PROBLEM_TEMPORARY,        /* WORKDIR/work/#plyfs-*: left by a crash */
	PLY_PROBLEM_WHITEOUT_NOTHING, /* a whiteout hiding no lower name */
	PLY_PROBLEM_REDIRECT_NOWHERE, /* overlay.redirect to no lower directory */
	PLY_PROBLEM_INDEX_ORPHAN,     /* a plyfs-index entry of no lower file */
	PLY_PROBLEM_INDEX_UNLINKED,   /* a plyfs-index entry with nlink 1 */
	PLY_PROBLEM_FOREIGN_MARKER,   /* a marker in a format (or xattr
				       * namespace) the mount would not write */
	PLY_PROBLEM_BAD_XATTR,        /* a malformed overlay.*, plyfs.* or
				       * override xattr */
};
struct ply_problem {
	enum ply_problem_kind kind;
	const char *where; /* the object's path on the host */
	const char *what;  /* one line on what is wrong */
	bool repairable;   /* removing it leaves the merged view as it is */
	int repaired;      /* 1 removed; 0 not asked; < 0 the removal's error */
};
struct ply_check_result {
	size_t found, repaired;
};
typedef void (*ply_check_fn)(const struct ply_problem *p, void *ctx);
/* The short name of a kind ("temporary", "whiteout-over-nothing", ...). */
const char *ply_problem_name(enum ply_problem_kind kind);
/* Takes the lock a mount holds on the workdir (WORKDIR/.plyfs.lock),
 * without cleaning anything: -EBUSY while a mount runs. *ret_fd holds it
 * until closed. */
int ply_check_lock(const struct ply_stack *stack, int *ret_fd,
		   struct ply_err *err);
/* Checks the upper layer of stack (and its workdir, if it has one) and
 * calls fn for each problem, in a stable order. Markers are judged
 * against stack->wh_format and xattr_ns (as ply_stack_probe_upper set
 * them). With repair, removes what is repairable. */
int ply_check(const struct ply_stack *stack, bool repair, ply_check_fn fn,
	      void *ctx, struct ply_check_result *ret, struct ply_err *err);

/* ---- convert.c: a layer's markers rewritten in one format --------------- */
struct ply_convert_result {
	size_t whiteouts, opaques; /* written */
	size_t dropped; /* whiteouts beside the name they hid, left out */
};
/* Called with a path from the layer root ("/a/b") and what was done. */
typedef void (*ply_convert_warn_fn)(const char *path, const char *what,
				    void *ctx);
/* Rewrites every whiteout and opaque marker under the layer directory
 * rootfd (O_PATH is fine), in whatever formats it holds them, as format
 * to with overlay.* xattrs under xattr_ns ("trusted." or "user."; NULL
 * only for PLY_WH_FILE); other overlay.* and plyfs.* xattrs move to
 * xattr_ns. Directory times are kept. Not atomic: for a layer no mount
 * is using. */
int ply_convert_layer(int rootfd, enum ply_wh_format to, const char *xattr_ns,
		      ply_convert_warn_fn warn, void *ctx,
		      struct ply_convert_result *ret, struct ply_err *err);

#endif
