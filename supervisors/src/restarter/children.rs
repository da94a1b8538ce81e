//! An ordered slab of children: O(1) insert at the end, O(1) lookup and removal by key,
//! iteration in start order or reverse from any child.

use crate::ChildKey;

#[derive(Debug, Clone)]
pub(crate) struct Children<T> {
    slots: Vec<Slot<T>>,
    /// Indices of vacant slots, reused before the vector grows.
    free: Vec<u32>,
    head: Option<u32>,
    tail: Option<u32>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Slot<T> {
    /// Bumped every time the slot is vacated, so keys to a removed child never match a new one.
    generation: u32,
    node: Option<Node<T>>,
}

#[derive(Debug, Clone)]
struct Node<T> {
    prev: Option<u32>,
    next: Option<u32>,
    value: T,
}

impl<T> Children<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            head: None,
            tail: None,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push_back(&mut self, value: T) -> ChildKey {
        let node = Node {
            prev: self.tail,
            next: None,
            value,
        };
        let index = if let Some(index) = self.free.pop() {
            self.slots[index as usize].node = Some(node);
            index
        } else {
            let index = u32::try_from(self.slots.len()).unwrap_or_else(|_| {
                // More than 4 billion children do not fit in memory anyway.
                panic!("a supervisor cannot hold more than u32::MAX children")
            });
            self.slots.push(Slot {
                generation: 0,
                node: Some(node),
            });
            index
        };
        if let Some(tail) = self.tail {
            if let Some(node) = self.slots[tail as usize].node.as_mut() {
                node.next = Some(index);
            }
        } else {
            self.head = Some(index);
        }
        self.tail = Some(index);
        self.len += 1;
        ChildKey {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    fn node(&self, key: ChildKey) -> Option<&Node<T>> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation == key.generation {
            slot.node.as_ref()
        } else {
            None
        }
    }

    fn node_mut(&mut self, key: ChildKey) -> Option<&mut Node<T>> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation == key.generation {
            slot.node.as_mut()
        } else {
            None
        }
    }

    pub(crate) fn get(&self, key: ChildKey) -> Option<&T> {
        self.node(key).map(|n| &n.value)
    }

    pub(crate) fn get_mut(&mut self, key: ChildKey) -> Option<&mut T> {
        self.node_mut(key).map(|n| &mut n.value)
    }

    pub(crate) fn remove(&mut self, key: ChildKey) -> Option<T> {
        self.node(key)?;
        let slot = &mut self.slots[key.index as usize];
        let node = slot.node.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        match node.prev {
            Some(p) => {
                if let Some(n) = self.slots[p as usize].node.as_mut() {
                    n.next = node.next;
                }
            }
            None => self.head = node.next,
        }
        match node.next {
            Some(nx) => {
                if let Some(n) = self.slots[nx as usize].node.as_mut() {
                    n.prev = node.prev;
                }
            }
            None => self.tail = node.prev,
        }
        self.free.push(key.index);
        self.len -= 1;
        Some(node.value)
    }

    fn key_of(&self, index: u32) -> ChildKey {
        ChildKey {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// Keys in start order, starting at `from` (inclusive), or at the head when `None`.
    pub(crate) fn iter_from(&self, from: Option<ChildKey>) -> Iter<'_, T> {
        let cursor = match from {
            Some(k) => self.node(k).map(|_| k.index),
            None => self.head,
        };
        Iter {
            children: self,
            cursor,
            forward: true,
        }
    }

    /// Keys in reverse start order, from the tail.
    pub(crate) fn iter_rev(&self) -> Iter<'_, T> {
        Iter {
            children: self,
            cursor: self.tail,
            forward: false,
        }
    }
}

/// Iterator over keys and values in start order or its reverse.
pub(crate) struct Iter<'a, T> {
    children: &'a Children<T>,
    cursor: Option<u32>,
    forward: bool,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = (ChildKey, &'a T);

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.cursor?;
        let node = self.children.slots[index as usize].node.as_ref()?;
        self.cursor = if self.forward { node.next } else { node.prev };
        Some((self.children.key_of(index), &node.value))
    }
}
