#![allow(dead_code)]
mod sys;
