// The names of the annotations KubeECR owns on a Secret.

/** Prefix of the annotations kubeecr owns on a Secret (and only those). */
export const STATUS_PREFIX = "kubeecr.deft.com/";
/** Human summary: when kubeecr last wrote the Secret (RFC 3339, UTC). Never read back. */
export const REFRESHED_AT = `${STATUS_PREFIX}refreshed-at`;
/** Human summary: the earliest expiry written by the last write (RFC 3339, UTC). Never read back. */
export const EXPIRES_AT = `${STATUS_PREFIX}expires-at`;
/**
 * Set by `kubeecr renew` (RFC 3339, UTC: when it was asked): the next run
 * treats the Secret as due whatever its expiry, and removes the annotation
 * with the write that refreshes it.
 */
export const RENEW_REQUESTED = `${STATUS_PREFIX}renew-requested-at`;
