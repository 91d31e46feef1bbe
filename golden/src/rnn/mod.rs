//! The recurrent half of the paper: the cell's triangular DFA feedback
//! ([`feedback::TriFeedback`], eq. 9–11).

pub mod feedback;
