//! Postfix wire protocols: socketmap (netstrings) and tcp_table.
