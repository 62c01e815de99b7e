/* SPDX-License-Identifier: GPL-2.0 */
/*
 * user/include/linux/uaccess.h - for the user-space build only (on the
 * include path with -DSTP_USER): copy_from_kernel_nofault() and friends
 * are in stp_user_kernel.h, so runtime headers written for the kernel
 * (stp_deref.h) compile unchanged.
 */
#include "../../stp_user_kernel.h"
