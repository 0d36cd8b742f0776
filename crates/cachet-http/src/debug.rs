//! [`debug_some_fields!`](crate::debug_some_fields): the `Debug` of a server type that
//! holds handles, pools or secrets, written once for every such type of both servers.

/// Implements `Debug` for `$ty`, showing only the named fields (each by its own
/// `Debug`) and marking the others as left out (`..`), so that connection handles,
/// pools and secrets are never printed.
#[macro_export]
macro_rules! debug_some_fields {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))+
                    .finish_non_exhaustive()
            }
        }
    };
}
