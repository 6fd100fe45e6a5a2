//! Input checks every backend needs alike: what one database refuses must be refused
//! at the input, as a 422 naming the field, on all of them.

use crate::rejection::Rejection;

/// Refuses text a database cannot store, naming `field`: a NUL character
/// (PostgreSQL refuses it in `text`; SQLite and MariaDB would keep it, so the same
/// input would be a 500 on one backend and stored on another).
///
/// ```
/// use dbinstance_web::storable_text;
///
/// assert!(storable_text("title", "Notes").is_ok());
/// let rejection = storable_text("title", "No\0tes").unwrap_err();
/// assert_eq!(rejection.status().as_u16(), 422);
/// assert!(rejection.message().contains("title"));
/// ```
///
/// # Errors
/// [`RejectionKind::Invalid`](crate::RejectionKind::Invalid) when `value` holds a NUL.
pub fn storable_text(field: &str, value: &str) -> Result<(), Rejection> {
    if value.contains('\0') {
        Err(Rejection::invalid(format!(
            "{field} must not contain a NUL character"
        )))
    } else {
        Ok(())
    }
}
